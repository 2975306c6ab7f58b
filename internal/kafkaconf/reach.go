package kafkaconf

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Reachability tells whether the Kafka brokers answer, from the traffic of
// the clients it is hooked into (kgo.WithHooks): a client that cannot dial
// any broker only logs and retries, so without this a process would look
// healthy forever. A readiness check reads it and sends nothing.
//
// The brokers are unreachable until one answers, and later when the last
// event is an error and no broker has answered for the grace period: one
// broker down in a cluster whose others answer (a consumer group
// heartbeats every few seconds) stays reachable, and so does an idle
// client that sees no errors.
type Reachability struct {
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	started time.Time
	lastOK  time.Time
	lastErr error
	errAt   time.Time
	errAddr string
}

// NewReachability returns a tracker; grace is how long the brokers may
// fail before they count as unreachable (default 10 s).
func NewReachability(grace time.Duration, now func() time.Time) *Reachability {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Reachability{grace: grace, now: now, started: now()}
}

// Opt is the client option that feeds the tracker.
func (r *Reachability) Opt() kgo.Opt { return kgo.WithHooks(r) }

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (r *Reachability) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		r.failed(meta, err)
	}
}

// OnBrokerRead implements kgo.HookBrokerRead: a response read is an
// answer.
func (r *Reachability) OnBrokerRead(meta kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		r.failed(meta, err)
		return
	}
	t := r.now()
	r.mu.Lock()
	r.lastOK = t
	r.mu.Unlock()
}

func (r *Reachability) failed(meta kgo.BrokerMetadata, err error) {
	t := r.now()
	r.mu.Lock()
	r.lastErr, r.errAt, r.errAddr = err, t, net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	r.mu.Unlock()
}

// Check is nil while the brokers answer, else why not.
func (r *Reachability) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	switch {
	case r.lastOK.IsZero() && r.lastErr == nil:
		return fmt.Errorf("no Kafka broker has answered yet (connecting for %s)", now.Sub(r.started).Round(time.Second))
	case r.lastOK.IsZero():
		return fmt.Errorf("brokers unreachable: no Kafka broker has answered since the process started; last error from %s: %v (check kafka.brokers, the network and the brokers)",
			r.errAddr, r.lastErr)
	case r.lastErr == nil || r.errAt.Before(r.lastOK) || now.Sub(r.lastOK) < r.grace:
		return nil
	}
	return fmt.Errorf("brokers unreachable: no Kafka broker has answered since %s; last error from %s: %v (check kafka.brokers, the network and the brokers)",
		r.lastOK.UTC().Format(time.RFC3339), r.errAddr, r.lastErr)
}
