package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show this node: ID, storage used and quota, shards held, peers",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			return runStatus(c, c.Bool("json"))
		},
	}
}

func runStatus(c *cli.Context, asJSON bool) error {
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return err
	}
	st, err := cl.Status(c.Context)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(c.App.Writer).Encode(st)
	}
	quota := "no quota"
	if st.StorageQuota > 0 {
		quota = fmt.Sprintf("quota %d MiB", st.StorageQuota>>20)
	}
	fmt.Fprintf(c.App.Writer, "node    %s\nstorage %d MiB used, %s\nblocks  %d\npeers   %d\n", st.PeerID, st.StorageUsed>>20, quota, st.Blocks, st.Peers)
	for _, a := range st.Addrs {
		fmt.Fprintf(c.App.Writer, "addr    %s\n", a)
	}
	if st.Announcing > 0 {
		fmt.Fprintf(c.App.Writer, "dht     announcing %d blocks\n", st.Announcing)
	}
	if m := st.Maintenance; m != nil {
		printMaint(c, *m)
	} else {
		fmt.Fprintln(c.App.Writer, "maint   not run yet")
	}
	return nil
}
