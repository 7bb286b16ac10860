package testnet

import (
	"context"
	"fmt"
)

// ErrNotRunning is returned by Add when no node of the testnet runs.
var ErrNotRunning = fmt.Errorf("testnet: no node of it runs (start it with 'umbra testnet up')")

// Add starts o.Nodes new nodes joined to the running nodes of the testnet
// in o.Dir (churn by hand: nodes killed, new ones added) and returns once
// each new node sees every running node.
func Add(ctx context.Context, o Options) (State, error) {
	ctx, cancel, dir, err := o.start(ctx)
	if err != nil {
		return State{}, err
	}
	defer cancel()
	st, err := Read(dir)
	if err != nil {
		return State{}, err
	}
	var live []Node
	for _, n := range st.Nodes {
		if ours(n) {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return State{}, ErrNotRunning
	}
	next := 0
	for _, n := range st.Nodes {
		next = max(next, n.Index+1)
	}
	var added []Node
	for j := 0; j < o.Nodes; j++ {
		n, err := startNode(ctx, o, dir, next+j, live)
		if n.PID != 0 {
			st.Nodes = append(st.Nodes, n)
			added = append(added, n)
		}
		if err == nil {
			err = write(st)
		}
		if err != nil {
			return st, err
		}
	}
	if err := waitMesh(ctx, added, len(live)+len(added)); err != nil {
		return st, err
	}
	for _, n := range added {
		for i := range st.Nodes {
			if st.Nodes[i].Index == n.Index {
				st.Nodes[i].Peers = n.Peers
			}
		}
	}
	return st, write(st)
}
