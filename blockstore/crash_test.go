package blockstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// crashWriterEnv makes the test binary act as a writer that a test kills.
const crashWriterEnv = "UMBRA_BLOCKSTORE_CRASH_WRITER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashWriterEnv); dir != "" {
		crashWriter(dir)
		return
	}
	if arg := os.Getenv(compactorEnv); arg != "" {
		compactor(arg)
		return
	}
	os.Exit(m.Run())
}

// crashWriter writes batches of blocks of mixed sizes forever, printing each
// CID once the Sync after it returned: those are acknowledged.
func crashWriter(dir string) {
	s, err := Open(dir)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	src := rand.NewChaCha8([32]byte{byte(os.Getpid()), byte(os.Getpid() >> 8)})
	rng := rand.New(src)
	for i := 0; ; i++ {
		var batch []blocks.Block
		for j := 0; j < 4; j++ {
			n := rng.IntN(3 << 20)
			if j%2 == 0 {
				n = rng.IntN(packThreshold)
			}
			d := make([]byte, n+8)
			src.Read(d)
			batch = append(batch, rawBlock(d))
		}
		if err := s.PutManyDeferred(ctx, batch); err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		if i%3 == 2 || rng.IntN(2) == 0 {
			if err := s.Sync(ctx); err != nil {
				fmt.Println("ERR", err)
				os.Exit(1)
			}
			for _, b := range batch {
				fmt.Fprintln(out, b.Cid())
			}
			out.Flush()
		}
	}
}

// TestKillDuringWrites kills a writer with SIGKILL mid-write, three times over
// the same directory. After each crash the store opens, serves every
// acknowledged block, and serves no block whose bytes fail their CID.
func TestKillDuringWrites(t *testing.T) {
	dir := t.TempDir()
	var acked []cid.Cid
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), crashWriterEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		target := 40 + 17*round
		n := 0
		for n < target && sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ERR") {
				t.Fatal(line)
			}
			c, err := cid.Decode(line)
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			acked = append(acked, c)
			n++
		}
		// Kill while it writes the next batches.
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if n < target {
			t.Fatalf("writer stopped after %d acknowledged blocks", n)
		}
		checkAfterCrash(t, dir, acked)
	}
}

func checkAfterCrash(t *testing.T, dir string, acked []cid.Cid) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for _, c := range acked {
		b, err := s.Get(ctx, c)
		if err != nil {
			t.Fatalf("acknowledged block %s lost: %v", c, err)
		}
		if err := Verify(c, b.RawData()); err != nil {
			t.Fatalf("acknowledged block %s corrupt", c)
		}
	}
	ch, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for c := range ch {
		total++
		b, err := s.Get(ctx, c)
		if err != nil {
			continue // refusing is allowed; serving bad bytes is not
		}
		if sha256.Sum256(b.RawData()) != [32]byte(c.Hash()[2:]) {
			t.Fatalf("block %s served with wrong bytes", c)
		}
	}
	if total < len(acked) {
		t.Fatalf("%d blocks listed, %d acknowledged", total, len(acked))
	}
}
