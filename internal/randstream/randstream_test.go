package randstream

import (
	"bytes"
	"testing"
)

func TestAt(t *testing.T) {
	all := Bytes(3, 100000)
	for _, off := range []int64{0, 1, 15, 16, 17, 4095, 99000} {
		if !bytes.Equal(At(3, off, 1000), all[off:off+1000]) {
			t.Fatalf("At(%d) differs", off)
		}
	}
}
