package chunker

import "testing"

// BenchmarkScan is the gear hash's inner loop alone, on data in cache.
func BenchmarkScan(b *testing.B) {
	data := seeded(1, 256<<10)
	g := GearTable(key(1))
	b.SetBytes(int64(len(data)))
	var h uint64
	for i := 0; i < b.N; i++ {
		h, _ = scan(&g, h, data, ^uint64(0))
	}
	_ = h
}
