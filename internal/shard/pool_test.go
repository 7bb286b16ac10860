package shard

import "testing"

func TestFramePool(t *testing.T) {
	p := newFramePool()
	b := p.get(300 << 10)
	if len(b) != 300<<10 || cap(b) != 512<<10 {
		t.Fatalf("get(300 KiB): len %d cap %d, want the 512 KiB class", len(b), cap(b))
	}
	b[0] = 1
	p.put(b)
	if again := p.get(400 << 10); &again[0] != &b[0] {
		t.Fatal("a buffer given back was not reused for its class")
	}
	if small := p.get(100); cap(small) != 100 {
		t.Fatalf("a small answer took a pooled buffer (cap %d)", cap(small))
	}
	p.put(make([]byte, 300<<10)) // not a class size: dropped
	if got := p.get(300 << 10); cap(got) != 512<<10 {
		t.Fatalf("a foreign buffer entered the pool (cap %d)", cap(got))
	}
	for i := 0; i < 20; i++ {
		p.put(make([]byte, 0, 4<<20))
	}
	if h := p.held.Load(); h > poolMax {
		t.Fatalf("pool holds %d bytes, cap %d", h, poolMax)
	}
	if big := p.get(4<<20 + 1); cap(big) != 4<<20+1 {
		t.Fatalf("beyond the largest class: cap %d", cap(big))
	}
}
