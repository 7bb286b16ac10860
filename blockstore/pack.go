package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Pack files hold the values of large blocks; Pebble holds the index. A pack
// is append-only:
//
//	header:  "UMBRAPK" ‖ version (0x01)                       8 bytes
//	record:  dataLen u32 ‖ mhLen u8 ‖ multihash ‖ data         repeated
//
// The record header lets a pack be scanned to rebuild the index; readers go
// straight to the data through the index's offset.
const (
	packMagic   = "UMBRAPK"
	packVersion = 0x01
	packHeader  = 8
	packExt     = ".pack"
	// packMaxSize is where a pack is closed and a new one started.
	packMaxSize = 1 << 30 // bytes
	// writebackStep is how often write-back is started ahead of a sync.
	writebackStep = 16 << 20 // bytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packs manages the pack files of one store.
type packs struct {
	dir string

	mu       sync.Mutex
	files    map[uint32]*os.File
	active   uint32
	size     int64 // bytes reserved in the active pack
	unsynced map[uint32]bool
	dirDirty bool // a pack was created since the last sync
	// Compaction's barriers: reservations made in a pack whose index entry
	// is not committed yet, and reads running in a pack.
	pending map[uint32]int
	reading map[uint32]int
	idle    *sync.Cond // signalled when a count above drops to zero

	// syncMu runs one sync at a time: a sync takes the unsynced marks
	// before its fdatasync, and one that came meanwhile must not find
	// them gone and return before the bytes they stand for are durable.
	syncMu sync.Mutex
}

func openPacks(dir string) (*packs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	p := &packs{dir: dir, files: map[uint32]*os.File{}, unsynced: map[uint32]bool{},
		pending: map[uint32]int{}, reading: map[uint32]int{}}
	p.idle = sync.NewCond(&p.mu)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	var ids []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), packExt)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		ids = append(ids, uint32(id))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		f, err := os.OpenFile(p.path(id), os.O_RDWR, 0)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("blockstore: %w", err)
		}
		p.files[id] = f
	}
	// Never append to a pack written before: a crash may have left a torn
	// tail whose length the index does not know. Start a new one.
	next := uint32(1)
	if len(ids) > 0 {
		next = ids[len(ids)-1] + 1
	}
	if err := p.startPack(next); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *packs) path(id uint32) string {
	return filepath.Join(p.dir, fmt.Sprintf("%08d%s", id, packExt))
}

// startPack creates pack id and makes it the active one. Called with mu held
// (or before the store is shared).
func (p *packs) startPack(id uint32) error {
	f, err := os.OpenFile(p.path(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("blockstore: create pack: %w", err)
	}
	hdr := append([]byte(packMagic), packVersion)
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		return fmt.Errorf("blockstore: write pack: %w", err)
	}
	// The new name must be durable before any index entry that points into
	// the pack is: sync makes the directory durable before the index.
	p.dirDirty = true
	p.unsynced[id] = true
	p.files[id] = f
	p.active, p.size = id, packHeader
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blockstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blockstore: sync %s: %w", dir, err)
	}
	return nil
}

// location of a value in a pack.
type location struct {
	pack   uint32
	offset int64 // of the data, past the record header
	length uint32
	crc    uint32
}

// append writes one record and returns where its data is. Writes to distinct
// reservations run in parallel; only the reservation takes the lock.
func (p *packs) append(mh []byte, data []byte) (location, error) {
	recLen := int64(4 + 1 + len(mh) + len(data))
	p.mu.Lock()
	if p.size+recLen > packMaxSize && p.size > packHeader {
		if err := p.startPack(p.active + 1); err != nil {
			p.mu.Unlock()
			return location{}, err
		}
	}
	id, off := p.active, p.size
	p.size += recLen
	f := p.files[id]
	p.pending[id]++ // until the writer's index commit (committed)
	p.mu.Unlock()

	hdr := make([]byte, 0, 5+len(mh))
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(data)))
	hdr = append(hdr, byte(len(mh)))
	hdr = append(hdr, mh...)
	if _, err := f.WriteAt(hdr, off); err != nil {
		p.committed([]location{{pack: id}})
		return location{}, fmt.Errorf("blockstore: write pack: %w", err)
	}
	dataOff := off + int64(len(hdr))
	if _, err := f.WriteAt(data, dataOff); err != nil {
		p.committed([]location{{pack: id}})
		return location{}, fmt.Errorf("blockstore: write pack: %w", err)
	}
	// Mark the pack for sync only now that the bytes are written: a sync that
	// ran between the reservation and the write must not clear the mark.
	p.mu.Lock()
	p.unsynced[id] = true
	p.mu.Unlock()
	// Start write-back of each completed writebackStep early, without
	// waiting, so that the Sync that acknowledges a put has little left.
	end := dataOff + int64(len(data))
	if end/writebackStep > off/writebackStep {
		from := (end/writebackStep - 1) * writebackStep
		_ = unix.SyncFileRange(int(f.Fd()), from, writebackStep, unix.SYNC_FILE_RANGE_WRITE)
	}
	return location{pack: id, offset: dataOff, length: uint32(len(data)), crc: crc32.Checksum(data, castagnoli)}, nil
}

// syncing, set by tests only, is called by a sync between taking the
// packs it syncs and syncing them; syncWaits by a sync that waits for
// another to finish.
var (
	syncing   = func() {}
	syncWaits = func() {}
)

// sync makes every record appended before it durable.
func (p *packs) sync() error {
	if !p.syncMu.TryLock() {
		syncWaits()
		p.syncMu.Lock()
	}
	defer p.syncMu.Unlock()
	p.mu.Lock()
	var ids []uint32
	var fs []*os.File
	for id := range p.unsynced {
		if f := p.files[id]; f != nil {
			ids = append(ids, id)
			fs = append(fs, f)
		}
	}
	p.hold(ids) // a compaction must not close a pack under the sync
	clear(p.unsynced)
	dirDirty := p.dirDirty
	p.dirDirty = false
	p.mu.Unlock()
	defer p.unhold(ids)
	syncing()
	for i, f := range fs {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			p.mu.Lock()
			for _, id := range ids[i:] { // this pack and those not reached
				p.unsynced[id] = true
			}
			p.dirDirty = p.dirDirty || dirDirty
			p.mu.Unlock()
			return fmt.Errorf("blockstore: sync pack: %w", err)
		}
	}
	if dirDirty {
		if err := syncDir(p.dir); err != nil {
			p.mu.Lock()
			p.dirDirty = true
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// errCorruptValue is returned by read when a value fails its CRC.
var errCorruptValue = errors.New("blockstore: stored value failed its checksum")

// committed marks the reservations of locs as in the index (or given
// up): compaction may then rewrite their packs.
func (p *packs) committed(locs []location) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range locs {
		if p.pending[l.pack]--; p.pending[l.pack] <= 0 {
			delete(p.pending, l.pack)
			p.idle.Broadcast()
		}
	}
}

// hold counts the packs ids as read (called with p.mu held) until unhold:
// dropPack waits for them before it closes one.
func (p *packs) hold(ids []uint32) {
	for _, id := range ids {
		p.reading[id]++
	}
}

// unhold ends a hold.
func (p *packs) unhold(ids []uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if p.reading[id]--; p.reading[id] <= 0 {
			delete(p.reading, id)
		}
	}
	p.idle.Broadcast()
}

// waitIdle waits until pack id has no reservation pending and, with
// reads, no read running. Called with p.mu held.
func (p *packs) waitIdle(id uint32, reads bool) {
	for p.pending[id] > 0 || reads && p.reading[id] > 0 {
		p.idle.Wait()
	}
}

// read returns the value at loc, checked against its CRC-32C unless
// skipCRC (a caller that hashes it: GetIntoUnchecked).
func (p *packs) read(loc location, get func(n int) []byte, skipCRC bool) ([]byte, error) {
	p.mu.Lock()
	f := p.files[loc.pack]
	if f != nil {
		p.reading[loc.pack]++
	}
	p.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("%w: pack %d missing", errCorruptValue, loc.pack)
	}
	defer func() {
		p.mu.Lock()
		if p.reading[loc.pack]--; p.reading[loc.pack] <= 0 {
			delete(p.reading, loc.pack)
			p.idle.Broadcast()
		}
		p.mu.Unlock()
	}()
	var buf []byte
	if get != nil {
		buf = get(int(loc.length))
		if len(buf) < int(loc.length) {
			return nil, ErrTooLarge
		}
		buf = buf[:loc.length]
	} else {
		buf = make([]byte, loc.length)
	}
	if _, err := f.ReadAt(buf, loc.offset); err != nil {
		if errors.Is(err, io.EOF) {
			// The pack ends before the value does: its bytes were lost.
			return nil, fmt.Errorf("%w: %v", errCorruptValue, err)
		}
		return nil, err // the disk failed: an I/O error, not corruption
	}
	if !skipCRC && crc32.Checksum(buf, castagnoli) != loc.crc {
		return nil, errCorruptValue
	}
	return buf, nil
}

func (p *packs) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	// The active pack ends at its used length (a record reserved but not
	// written leaves no tail); drop it if it holds nothing.
	if f := p.files[p.active]; f != nil {
		if p.size == packHeader {
			f.Close()
			delete(p.files, p.active)
			if err := os.Remove(p.path(p.active)); err != nil {
				first = err
			}
		} else if err := f.Truncate(p.size); err != nil {
			first = err
		}
	}
	for id, f := range p.files {
		if p.unsynced[id] {
			if err := unix.Fdatasync(int(f.Fd())); err != nil && first == nil {
				first = err
			}
		}
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	p.files = map[uint32]*os.File{}
	return first
}
