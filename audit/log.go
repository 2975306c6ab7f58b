package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventlake/eventlake/internal/logkey"
)

// Log attribute keys of the audit log.
const (
	logNode     = "node"
	logSeq      = "seq"
	logFromSeq  = "from_seq"
	logToSeq    = "to_seq"
	logDropped  = "bytes_dropped"
	logSegments = "segments"
	logInterval = "interval"
)

// Files of a log directory besides its segments.
const (
	nodeFile = "NODE" // the log's node id, written once at creation
	lockFile = "LOCK" // flock-ed by the process that has the log open
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// ErrLocked means another process (or another Log in this one) has the
// directory open.
var ErrLocked = errors.New("audit log directory is in use by another process")

// ErrFailed means a write or fsync of the log failed: what was written
// since the last fsync may or may not be on disk, so the log takes no
// more records until it is opened again (which cuts a torn tail).
var ErrFailed = errors.New("audit log failed")

// Options tune a Log. The zero value is usable.
type Options struct {
	// SegmentBytes is the size at which the log starts a new segment
	// file; committed segments are deleted whole. Default 16 MiB.
	SegmentBytes int64
	// MaxBatchRecords and MaxBatchBytes bound one group commit (one write
	// and one fsync): defaults 1000 records and 1 MiB. MaxBatchRecords is
	// also how many appends may wait for the writer.
	MaxBatchRecords int
	MaxBatchBytes   int
	// MaxStatementBytes cuts longer statements (with a note at the end);
	// default 64 KiB, negative keeps every statement whole.
	MaxStatementBytes int
	// Now stamps records that come without a time; default time.Now.
	Now func() time.Time
	// Logger and Registry default to discarding.
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

func (o *Options) defaults() {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.MaxBatchRecords == 0 {
		o.MaxBatchRecords = 1000
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.MaxStatementBytes == 0 {
		o.MaxStatementBytes = 64 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.SegmentBytes < 4<<10 {
		errs = append(errs, fmt.Errorf("audit log segment size %d is below 4 KiB", o.SegmentBytes))
	}
	if o.MaxBatchRecords < 1 {
		errs = append(errs, fmt.Errorf("audit log batch of %d records: at least 1", o.MaxBatchRecords))
	}
	if o.MaxBatchBytes < 1 {
		errs = append(errs, fmt.Errorf("audit log batch of %d bytes: at least 1", o.MaxBatchBytes))
	}
	return errors.Join(errs...)
}

// request is one Append waiting for the writer.
type request struct {
	payload []byte
	done    chan error // buffered: the writer never waits for the caller
}

// Log is a local, append-only, fsynced log of audit records in one
// directory. Append returns once its record is on disk; concurrent appends
// share a write and an fsync (group commit). Every record gets the next
// sequence number of the log, which survives restarts (it is the position
// in the segments). A Shipper moves the records to the audit_log table.
//
// One writer goroutine, started by Open and ended by Close, does every
// write.
type Log struct {
	dir  string
	opts Options
	node string
	lock *os.File
	log  *slog.Logger
	m    *logMetrics

	reqs      chan *request
	closing   chan struct{}
	stopped   chan struct{} // closed when the writer has exited
	closeOnce sync.Once
	closeErr  error

	// Owned by the writer goroutine.
	f     *os.File
	fsize int64
	next  uint64 // sequence number of the next record written
	buf   []byte
	werr  error // sticky: set when a write or fsync failed

	// durable is the sequence number below which every record is on disk.
	durable atomic.Uint64
	// ready receives a token after each durable batch (wakes the shipper).
	ready chan struct{}

	mu   sync.Mutex
	segs []uint64 // first sequence numbers of the segments, ascending
	cur  cursor   // where the last read stopped
}

// cursor is a position in the log: the frame of record seq starts at byte
// off of segment seg.
type cursor struct {
	seg, seq uint64
	off      int64
	valid    bool
}

// Open opens the log in dir, creating the directory and a new node id if
// needed, and cuts a torn tail left by a crash. Only one Log may have a
// directory open at a time (an flock, released by the kernel when the
// process dies).
func Open(dir string, opts Options) (*Log, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock audit log %s: %w", dir, err)
	}
	l := &Log{
		dir: dir, opts: opts, lock: lock, log: opts.Logger,
		reqs: make(chan *request, opts.MaxBatchRecords), closing: make(chan struct{}), stopped: make(chan struct{}),
		ready: make(chan struct{}, 1),
	}
	if err := l.open(); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Close()
		return nil, err
	}
	m, err := newLogMetrics(opts.Registry)
	if err != nil {
		l.f.Close()
		lock.Close()
		return nil, err
	}
	l.m = m
	l.log.Info("audit log opened", logkey.Path, dir, logNode, l.node, logSeq, l.next, logSegments, len(l.segs))
	go l.run()
	return l, nil
}

// open reads or creates the node id and the segments and opens the last
// segment for appending.
func (l *Log) open() error {
	node, err := readOrCreateNode(l.dir)
	if err != nil {
		return err
	}
	l.node = node
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		f, err := createSegment(l.dir, 0)
		if err != nil {
			return err
		}
		l.f, l.segs = f, []uint64{0}
		return nil
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(segPath(l.dir, last), os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log segment: %w", err)
	}
	l.f = f
	n, end, err := scan(f, last)
	if err != nil {
		return fmt.Errorf("read audit log segment %s: %w", f.Name(), err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat audit log segment: %w", err)
	}
	if st.Size() > end {
		// A torn tail: bytes of a batch that was never acknowledged.
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("cut torn tail of %s: %w", f.Name(), err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
		l.log.Warn("audit log: cut a torn tail left by a crash", logkey.Path, f.Name(), logDropped, st.Size()-end, logSeq, last+n)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", f.Name(), err)
	}
	l.fsize, l.next, l.segs = end, last+n, segs
	l.durable.Store(l.next)
	return nil
}

func readOrCreateNode(dir string) (string, error) {
	p := filepath.Join(dir, nodeFile)
	b, err := os.ReadFile(p)
	if err == nil {
		node := strings.TrimSpace(string(b))
		if node == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrCorrupt, p)
		}
		return node, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read audit log node id: %w", err)
	}
	if segs, err := listSegments(dir); err != nil {
		return "", err
	} else if len(segs) > 0 {
		// Records without a node id cannot be told from another log's.
		return "", fmt.Errorf("%w: %s has segments but no %s", ErrCorrupt, dir, nodeFile)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := writeSynced(tmp, []byte(id.String()+"\n")); err != nil {
		return "", fmt.Errorf("write audit log node id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("write audit log node id: %w", err)
	}
	// The directory's own entry too: it may have just been created.
	if err := syncDir(dir); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return "", err
	}
	return id.String(), nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

// createSegment creates the segment starting at first and makes its
// directory entry durable.
func createSegment(dir string, first uint64) (*os.File, error) {
	f, err := os.OpenFile(segPath(dir, first), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create audit log segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Node is the log's stable id, created with its directory. The shipper
// stores its progress in the table under the pseudo topic "audit/<node>".
func (l *Log) Node() string { return l.node }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Durable is the sequence number below which every record is on disk:
// the number of records ever appended to this log.
func (l *Log) Durable() uint64 { return l.durable.Load() }

// Append writes rec to the log and returns once it is on disk. Appends
// from many goroutines are written and fsynced together. A record that
// comes without a Time is stamped now. When ctx ends first, or Append
// returns another error, the record may or may not have been logged.
func (l *Log) Append(ctx context.Context, rec Record) error {
	return l.Begin(ctx, rec)()
}

// Begin queues rec as Append does, and returns without waiting for the
// disk: wait returns what Append would have (call it once). A caller
// does its work meanwhile, and holds back what must not go out before
// the record is on disk until wait returned nil.
func (l *Log) Begin(ctx context.Context, rec Record) (wait func() error) {
	failed := func(err error) func() error {
		l.m.appendErrors.Inc()
		return func() error { return err }
	}
	if err := rec.validate(); err != nil {
		return failed(err)
	}
	if rec.Time.IsZero() {
		rec.Time = l.opts.Now()
	}
	rec.Time = rec.Time.UTC()
	rec.Statement = cutStatement(rec.Statement, l.opts.MaxStatementBytes)
	payload, err := json.Marshal(&rec)
	if err != nil {
		return failed(fmt.Errorf("encode audit record: %w", err))
	}
	req := &request{payload: payload, done: make(chan error, 1)}
	select {
	case l.reqs <- req:
	case <-l.closing:
		return func() error { return ErrClosed }
	case <-ctx.Done():
		return failed(fmt.Errorf("append audit record: %w", ctx.Err()))
	}
	return func() error {
		var err error
		select {
		case err = <-req.done:
		case <-ctx.Done():
			err = fmt.Errorf("append audit record: %w", ctx.Err())
		case <-l.stopped:
			select {
			case err = <-req.done:
			default:
				err = ErrClosed // queued after the writer's last batch
			}
		}
		if err != nil {
			l.m.appendErrors.Inc()
		}
		return err
	}
}

// Close writes what is queued, stops the writer and releases the
// directory. Appends after Close return ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.stopped
		var errs []error
		if err := l.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit log segment: %w", err))
		}
		if err := l.lock.Close(); err != nil { // releases the flock
			errs = append(errs, fmt.Errorf("close audit log lock: %w", err))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// run is the writer: it takes the appends waiting, writes and fsyncs them
// as one batch, and answers each.
func (l *Log) run() {
	defer close(l.stopped)
	var carry *request // taken from the queue, but too big for the last batch
	for {
		first := carry
		if first == nil {
			select {
			case first = <-l.reqs:
			case <-l.closing:
				select {
				case first = <-l.reqs: // queued before Close: still written
				default:
					return
				}
			}
		}
		var batch []*request
		batch, carry = collect(first, l.reqs, l.opts.MaxBatchRecords, l.opts.MaxBatchBytes)
		err := l.write(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// collect adds to first the requests already waiting on ch, up to
// maxRecords records and maxBytes bytes of payload (first alone may be
// larger). A request taken from ch that does not fit is returned as next,
// to start the next batch.
func collect(first *request, ch <-chan *request, maxRecords, maxBytes int) (batch []*request, next *request) {
	batch = []*request{first}
	size := len(first.payload)
	for len(batch) < maxRecords {
		select {
		case r := <-ch:
			if size+len(r.payload) > maxBytes {
				return batch, r
			}
			batch = append(batch, r)
			size += len(r.payload)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// write appends batch to the log as one write and one fsync, starting a
// new segment first when the current one is full.
func (l *Log) write(batch []*request) error {
	if l.werr != nil {
		return l.werr
	}
	l.buf = l.buf[:0]
	for i, r := range batch {
		l.buf = appendFrame(l.buf, l.next+uint64(i), r.payload)
	}
	if l.fsize > 0 && l.fsize+int64(len(l.buf)) > l.opts.SegmentBytes {
		if err := l.rotate(); err != nil {
			return l.fail(err)
		}
	}
	start := time.Now()
	if _, err := l.f.Write(l.buf); err != nil {
		return l.fail(fmt.Errorf("write %s: %w", l.f.Name(), err))
	}
	if err := l.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("fsync %s: %w", l.f.Name(), err))
	}
	l.m.fsyncDuration.Observe(time.Since(start).Seconds())
	l.m.batchRecords.Observe(float64(len(batch)))
	l.m.appended.Add(float64(len(batch)))
	l.fsize += int64(len(l.buf))
	l.next += uint64(len(batch))
	l.durable.Store(l.next)
	if cap(l.buf) > 4*l.opts.MaxBatchBytes {
		l.buf = nil // one huge record must not pin its buffer
	}
	select {
	case l.ready <- struct{}{}:
	default:
	}
	return nil
}

// rotate closes the current segment (every batch in it is fsynced) and
// starts the next one at l.next.
func (l *Log) rotate() error {
	f, err := createSegment(l.dir, l.next)
	if err != nil {
		return err
	}
	old := l.f
	l.f, l.fsize = f, 0
	l.mu.Lock()
	l.segs = append(l.segs, l.next)
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		l.log.Warn("close full audit log segment", logkey.Path, old.Name(), logkey.Err, err)
	}
	return nil
}

// fail makes err sticky: after a failed write or fsync the state of the
// file is unknown until it is opened again.
func (l *Log) fail(err error) error {
	l.werr = fmt.Errorf("%w: %w (open the log again to continue)", ErrFailed, err)
	l.log.Error("audit log write failed; appends are refused until it is opened again", logkey.Path, l.dir, logkey.Err, err)
	return l.werr
}

// entry is a record read back from the log.
type entry struct {
	seq  uint64
	rec  Record
	size int // bytes of its JSON form
}

// read returns the durable records from sequence number from on, at most
// maxRecords of them and, past the first, at most maxBytes of JSON.
func (l *Log) read(from uint64, maxRecords, maxBytes int) ([]entry, error) {
	durable := l.durable.Load()
	if from >= durable {
		return nil, nil
	}
	l.mu.Lock()
	segs := slices.Clone(l.segs)
	cur := l.cur
	l.mu.Unlock()
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: no segment in %s", ErrCorrupt, l.dir)
	}
	if from < segs[0] {
		return nil, fmt.Errorf("%w: record %d is no longer in the local log %s, which starts at %d", ErrCorrupt, from, l.dir, segs[0])
	}
	i, _ := slices.BinarySearch(segs, from+1)
	i-- // the last segment starting at or before from
	seq, off := segs[i], int64(0)
	if cur.valid && cur.seg == segs[i] && cur.seq <= from {
		seq, off = cur.seq, cur.off
	}
	var (
		out   []entry
		bytes int
	)
	for seq < durable && len(out) < maxRecords && (len(out) == 0 || bytes < maxBytes) {
		f, err := os.Open(segPath(l.dir, segs[i]))
		if err != nil {
			return nil, fmt.Errorf("open audit log segment: %w", err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("seek %s: %w", f.Name(), err)
		}
		fr := newFrameReader(f, off)
		for seq < durable && len(out) < maxRecords && (len(out) == 0 || bytes < maxBytes) {
			got, payload, err := fr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, errTorn) {
				err = fmt.Errorf("%w: damaged frame at byte %d of %s, record %d", ErrCorrupt, fr.off, f.Name(), seq)
			}
			if err == nil && got != seq {
				err = fmt.Errorf("%w: frame at byte %d of %s holds record %d, expected %d", ErrCorrupt, fr.off, f.Name(), got, seq)
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			if seq >= from {
				var rec Record
				if err := json.Unmarshal(payload, &rec); err != nil {
					f.Close()
					return nil, fmt.Errorf("%w: record %d in %s: %v", ErrCorrupt, seq, f.Name(), err)
				}
				out = append(out, entry{seq: seq, rec: rec, size: len(payload)})
				bytes += len(payload)
			}
			seq++
			off = fr.off
		}
		f.Close()
		if seq >= durable || len(out) >= maxRecords || bytes >= maxBytes {
			break
		}
		// The segment ended: the next one must start where it stopped.
		if i+1 >= len(segs) || segs[i+1] != seq {
			return nil, fmt.Errorf("%w: segment %s ends at record %d, before the durable end %d, and no segment starts there", ErrCorrupt, segName(segs[i]), seq, durable)
		}
		i, off = i+1, 0
	}
	l.mu.Lock()
	l.cur = cursor{seg: segs[i], seq: seq, off: off, valid: true}
	l.mu.Unlock()
	return out, nil
}

// release deletes the segments whose records are all below through (they
// are in the table); the last segment is always kept, since it holds the
// log's next sequence number.
func (l *Log) release(through uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1] <= through {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, first := range l.segs[:n] {
		if err := os.Remove(segPath(l.dir, first)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete committed audit log segment: %w", err)
		}
		if l.cur.seg == first {
			l.cur.valid = false
		}
	}
	l.segs = slices.Delete(l.segs, 0, n)
	l.m.segmentsDeleted.Add(float64(n))
	// Not needed for correctness (a segment that comes back after a crash
	// is deleted again), but keeps the directory bounded across crashes.
	return syncDir(l.dir)
}
