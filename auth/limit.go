package auth

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Limits bound what one token may ask of the service.
type Limits struct {
	// Disabled turns the limits off (benchmarks, trusted callers only).
	Disabled bool `yaml:"disabled"`
	// RequestsPerSecond is the sustained request rate of one token; Burst
	// how many it may send at once above it. Default 50 and 100.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	// MaxConcurrent bounds one token's requests in flight (streams not
	// counted). Default 4: half of the default query slots.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Defaults fills unset limits: a dashboard's worth of requests, half of
// the default query slots.
func (l *Limits) Defaults() {
	if l.Disabled {
		return
	}
	if l.RequestsPerSecond == 0 {
		l.RequestsPerSecond = 50
	}
	if l.Burst == 0 {
		l.Burst = 100
	}
	if l.MaxConcurrent == 0 {
		l.MaxConcurrent = 4
	}
}

// Validate checks the limits.
func (l Limits) Validate() error {
	if l.RequestsPerSecond < 0 || l.Burst < 0 || l.MaxConcurrent < 0 {
		return fmt.Errorf("auth.limits must not be negative: %+v", l)
	}
	if l.RequestsPerSecond > 0 && l.Burst < 1 {
		return fmt.Errorf("auth.limits.burst must be at least 1 with a rate of %v/s", l.RequestsPerSecond)
	}
	return nil
}

// Limiter applies Limits per token name (every process counts its own).
type Limiter struct {
	lim Limits
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]*bucket
}

type bucket struct {
	level    float64 // tokens left
	at       time.Time
	inflight int
}

// NewLimiter returns a limiter of lim.
func NewLimiter(lim Limits) *Limiter {
	return &Limiter{lim: lim, now: time.Now, tokens: map[string]*bucket{}}
}

// LimitError is a refusal: retry after RetryAfter.
type LimitError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Msg }

// Acquire admits one request of name; counted says whether it holds a
// concurrency slot until release is called. release is never nil.
func (l *Limiter) Acquire(name string, counted bool) (release func(), err error) {
	noop := func() {}
	if l == nil || l.lim.Disabled {
		return noop, nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.tokens[name]
	if b == nil {
		b = &bucket{level: float64(l.lim.Burst), at: now}
		l.tokens[name] = b
	}
	if r := l.lim.RequestsPerSecond; r > 0 {
		b.level = math.Min(float64(l.lim.Burst), b.level+now.Sub(b.at).Seconds()*r)
		b.at = now
		if b.level < 1 {
			wait := time.Duration((1 - b.level) / r * float64(time.Second))
			return noop, &LimitError{RetryAfter: wait,
				Msg: fmt.Sprintf("token %q sends more than %v requests per second (burst %d): slow down and retry after the Retry-After delay", name, r, l.lim.Burst)}
		}
	}
	if counted && l.lim.MaxConcurrent > 0 && b.inflight >= l.lim.MaxConcurrent {
		return noop, &LimitError{RetryAfter: time.Second,
			Msg: fmt.Sprintf("token %q already has %d requests running (auth.limits.max_concurrent): wait for one to finish", name, l.lim.MaxConcurrent)}
	}
	if l.lim.RequestsPerSecond > 0 {
		b.level--
	}
	if !counted {
		return noop, nil
	}
	b.inflight++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			b.inflight--
			l.mu.Unlock()
		})
	}, nil
}
