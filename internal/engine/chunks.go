package engine

import (
	"context"
	"fmt"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// Chunks returns the plaintext size of each of a file's chunks, in order:
// a reader that fetches whole chunks (a mount's cache) aligns its reads to
// them, so that no chunk is fetched and opened twice. The manifest is
// walked within the same budget as a read.
func (e *Engine) Chunks(ctx context.Context, c keyring.ReadCap) ([]uint64, error) {
	root, err := e.openNode(ctx, c.Root(), c.ReadKey())
	if err != nil {
		return nil, err
	}
	budget := walkBudget(root.Size)
	var out []uint64
	var visit func(n *format.Node) error
	visit = func(n *format.Node) error {
		for _, ent := range n.Entries {
			if budget--; budget < 0 {
				return fmt.Errorf("%w: manifest has more entries than its size allows", ErrCorrupt)
			}
			if n.Level == 0 {
				out = append(out, ent.Size)
				continue
			}
			child, err := e.openNode(ctx, ent.Child, ent.Key)
			if err != nil {
				return err
			}
			if child.Size != ent.Size || int(child.Level) != int(n.Level)-1 {
				return fmt.Errorf("%w: manifest node %x… disagrees with its parent", ErrCorrupt, ent.Child[:6])
			}
			if err := visit(child); err != nil {
				return err
			}
		}
		return nil
	}
	return out, visit(root)
}
