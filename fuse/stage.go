package fuse

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	"os"
)

// stageBlock is the unit a staged file is sealed in once it leaves memory.
const stageBlock = 64 << 10

// stageMem is how large a staged file grows in memory before it moves to
// its sealed file.
const stageMem = 1 << 20

// stage holds a file being written until it is uploaded: in memory while
// small, then in a file of its own in the staging directory, each block
// sealed with AES-256-GCM under a key made for this file alone and a fresh
// random nonce on each write (a block rewritten never reuses one). The
// file is unlinked as soon as it is made: a crash leaves nothing behind,
// and nothing on disk was ever plaintext.
type stage struct {
	dir  string
	mem  []byte
	f    *os.File
	aead cipher.AEAD
	size int64
	// written marks the blocks of f that hold data (others read as zeros).
	written map[int64]bool
}

func newStage(dir string) *stage { return &stage{dir: dir} }

const sealedBlock = 12 + stageBlock + 16 // nonce ‖ sealed block ‖ tag

// spill moves the content to a sealed file.
func (s *stage) spill() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	if s.aead, err = cipher.NewGCM(blk); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".stage-*")
	if err != nil {
		return err
	}
	_ = os.Remove(f.Name()) // open, unlinked: gone with the process
	s.f, s.written = f, map[int64]bool{}
	mem := s.mem
	s.mem = nil
	for off := int64(0); off < int64(len(mem)); off += stageBlock {
		if err := s.writeBlock(off/stageBlock, mem[off:min(off+stageBlock, int64(len(mem)))]); err != nil {
			return err
		}
	}
	return nil
}

func (s *stage) readBlock(i int64) ([]byte, error) {
	out := make([]byte, stageBlock)
	if !s.written[i] {
		return out, nil
	}
	buf := make([]byte, sealedBlock)
	if _, err := s.f.ReadAt(buf, i*sealedBlock); err != nil {
		return nil, err
	}
	plain, err := s.aead.Open(out[:0], buf[:12], buf[12:], nil)
	if err != nil {
		return nil, errors.New("fuse: staged block does not open")
	}
	return plain, nil
}

func (s *stage) writeBlock(i int64, plain []byte) error {
	full := make([]byte, stageBlock)
	copy(full, plain)
	buf := make([]byte, 12, sealedBlock)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	buf = s.aead.Seal(buf, buf[:12], full, nil)
	if _, err := s.f.WriteAt(buf, i*sealedBlock); err != nil {
		return err
	}
	s.written[i] = true
	return nil
}

// WriteAt writes p at off.
func (s *stage) WriteAt(p []byte, off int64) error {
	end := off + int64(len(p))
	if s.f == nil && end <= stageMem {
		if end > int64(len(s.mem)) {
			s.mem = append(s.mem, make([]byte, end-int64(len(s.mem)))...)
		}
		copy(s.mem[off:], p)
		s.size = max(s.size, end)
		return nil
	}
	if s.f == nil {
		if err := s.spill(); err != nil {
			return err
		}
	}
	for len(p) > 0 {
		i, in := off/stageBlock, off%stageBlock
		b, err := s.readBlock(i)
		if err != nil {
			return err
		}
		n := copy(b[in:], p)
		if err := s.writeBlock(i, b); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	s.size = max(s.size, end)
	return nil
}

// ReadAt reads into p from off, up to the size.
func (s *stage) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.size-off)]
	if s.f == nil {
		return copy(p, s.mem[off:]), nil
	}
	n := 0
	for n < len(p) {
		i, in := (off+int64(n))/stageBlock, (off+int64(n))%stageBlock
		b, err := s.readBlock(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[in:])
	}
	return n, nil
}

// Truncate sets the size; bytes past it read as zeros if it grows again.
func (s *stage) Truncate(size int64) error {
	if s.f == nil {
		if size <= stageMem {
			if size < int64(len(s.mem)) {
				s.mem = s.mem[:size]
			} else {
				s.mem = append(s.mem, make([]byte, size-int64(len(s.mem)))...)
			}
			s.size = size
			return nil
		}
		if err := s.spill(); err != nil {
			return err
		}
	}
	if size < s.size {
		// Zero the rest of the last block kept, drop the blocks after it.
		if in := size % stageBlock; in != 0 {
			b, err := s.readBlock(size / stageBlock)
			if err != nil {
				return err
			}
			clear(b[in:])
			if err := s.writeBlock(size/stageBlock, b); err != nil {
				return err
			}
		}
		for i := range s.written {
			if i*stageBlock >= size && (i*stageBlock > size || size%stageBlock == 0) {
				delete(s.written, i)
			}
		}
	}
	s.size = size
	return nil
}

// Reader reads the whole content.
func (s *stage) Reader() io.Reader { return io.NewSectionReader(s, 0, s.size) }

// Close drops the content.
func (s *stage) Close() {
	if s.f != nil {
		s.f.Close()
	}
	s.mem, s.f = nil, nil
}
