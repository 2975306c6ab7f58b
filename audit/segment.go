package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The local log is a directory of segment files named after the sequence
// number of their first record (%020d.seg), each a run of frames:
//
//	u32 payload length | u32 CRC-32C of (seq, payload) | u64 seq | payload (JSON Record)
//
// little-endian. A segment is only ever appended to; the writer fsyncs
// each batch before acknowledging it, so after a crash only the bytes
// after the last fsync can be damaged, and they belong to records nobody
// was told were logged. Opening the log cuts the last segment at its
// first frame that is incomplete or fails its checksum (a torn tail). A
// frame whose checksum holds but whose sequence number is not the next
// one, or damage in any segment but the last, is corruption: an error,
// never skipped.

const (
	frameHeader = 16
	// maxFrame bounds the payload length read from a header: a longer one
	// is damage, not a record (records are at most a few MiB).
	maxFrame = 64 << 20
	segExt   = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt means the log holds damage that a crash cannot explain.
var ErrCorrupt = errors.New("audit log corrupt")

// errTorn is what follows the last whole frame of a segment when it is
// not a clean end.
var errTorn = errors.New("torn frame")

// appendFrame appends one frame to dst.
func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameReader reads the frames of one segment.
type frameReader struct {
	r   *bufio.Reader
	off int64 // offset of the next frame
	buf []byte
}

func newFrameReader(r io.Reader, off int64) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10), off: off}
}

// next returns the next frame. io.EOF: the segment ends cleanly here;
// errTorn: what follows is not a whole, valid frame. The payload is valid
// until the next call.
func (fr *frameReader) next() (seq uint64, payload []byte, err error) {
	var h [frameHeader]byte
	n, err := io.ReadFull(fr.r, h[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return 0, nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, nil, errTorn
	case err != nil:
		return 0, nil, err
	}
	size := binary.LittleEndian.Uint32(h[0:4])
	if size == 0 || size > maxFrame {
		return 0, nil, errTorn
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	fr.buf = fr.buf[:size]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, errTorn
		}
		return 0, nil, err
	}
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, fr.buf)
	if crc != binary.LittleEndian.Uint32(h[4:8]) {
		return 0, nil, errTorn
	}
	fr.off += frameHeader + int64(size)
	return binary.LittleEndian.Uint64(h[8:16]), fr.buf, nil
}

// scan reads frames from r, which must start with sequence number first,
// and returns how many whole frames there are and where they end. A
// checksummed frame out of sequence is ErrCorrupt; errTorn is not
// returned (the caller compares end with the size).
func scan(r io.Reader, first uint64) (n uint64, end int64, err error) {
	fr := newFrameReader(r, 0)
	for {
		seq, _, err := fr.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTorn) {
			return n, fr.off, nil
		}
		if err != nil {
			return n, fr.off, err
		}
		if seq != first+n {
			return n, fr.off, fmt.Errorf("%w: frame at byte %d holds record %d, expected %d", ErrCorrupt, fr.off, seq, first+n)
		}
		n++
	}
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// listSegments returns the first sequence numbers of the segments in dir,
// ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list audit log %s: %w", dir, err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok || e.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, e.Name(), dir)
		}
		out = append(out, first)
	}
	slices.Sort(out)
	return out, nil
}

// syncDir makes the creation, renaming or removal of files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, serr)
	}
	return cerr
}

func segPath(dir string, first uint64) string { return filepath.Join(dir, segName(first)) }
