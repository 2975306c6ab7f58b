package kafkaconf

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestReachability(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := NewReachability(10*time.Second, func() time.Time { return now })
	seed := kgo.BrokerMetadata{NodeID: -1, Host: "127.0.0.1", Port: 1}
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "has answered yet") {
		t.Fatalf("before any answer: %v", err)
	}
	r.OnBrokerConnect(seed, 0, nil, errors.New("connection refused"))
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused from the start: %v", err)
	}
	r.OnBrokerRead(seed, 3, 100, 0, 0, nil)
	if err := r.Check(); err != nil {
		t.Fatalf("after an answer: %v", err)
	}
	// One broker of several failing while another answers stays ready.
	now = now.Add(5 * time.Second)
	r.OnBrokerConnect(kgo.BrokerMetadata{Host: "10.0.0.2", Port: 9092}, 0, nil, errors.New("i/o timeout"))
	if err := r.Check(); err != nil {
		t.Fatalf("an error within the grace period: %v", err)
	}
	now = now.Add(6 * time.Second)
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "10.0.0.2:9092") {
		t.Fatalf("errors only for 11s: %v", err)
	}
	// An idle client with no errors since its last answer stays ready.
	r.OnBrokerRead(seed, 3, 100, 0, 0, nil)
	now = now.Add(time.Hour)
	if err := r.Check(); err != nil {
		t.Fatalf("idle: %v", err)
	}
}
