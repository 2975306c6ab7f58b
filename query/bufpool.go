package query

import "sync"

// maxPooledBuf is the largest buffer kept for reuse: a day of one-minute
// rows (~200 KB) is, an answer of query.max_rows wide rows is not.
const maxPooledBuf = 4 << 20

// bufPool recycles the buffers answers are encoded in: a day's answer
// would otherwise be allocated, and grown, for every request (garbage
// the collector then has to catch up with, in the middle of requests).
type bufPool struct{ p sync.Pool }

func (p *bufPool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	p.p.Put(b)
}
