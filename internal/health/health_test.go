package health

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadyNamesEachFailingComponent(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := New(reg)
	c.Add("catalog", func() error { return nil })
	c.Add("brokers", func() error { return errors.New("brokers unreachable: dial tcp 127.0.0.1:1: connection refused") })
	rec := httptest.NewRecorder()
	c.ServeReady(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	var r Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "not_ready" || len(r.Components) != 2 || r.Components[0].Component != "brokers" ||
		r.Components[0].Ready || !strings.Contains(r.Components[0].Reason, "unreachable") || !r.Components[1].Ready {
		t.Fatalf("report %+v", r)
	}
	want := `
# HELP eventlake_component_ready 1 when the component is ready to serve its role, 0 when not (GET /readyz says why).
# TYPE eventlake_component_ready gauge
eventlake_component_ready{component="brokers"} 0
eventlake_component_ready{component="catalog"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "eventlake_component_ready"); err != nil {
		t.Fatal(err)
	}
	c.Add("brokers", func() error { return nil })
	rec = httptest.NewRecorder()
	c.ServeReady(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
}

func TestCommitterIdleIsNotStuck(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := NewCommitter("read-model committer", time.Minute, func() time.Time { return now })
	now = now.Add(time.Hour)
	if err := c.Check(); err != nil {
		t.Fatalf("idle committer reported stuck: %v", err)
	}
	c.Pending(now)
	now = now.Add(30 * time.Second)
	if err := c.Check(); err != nil {
		t.Fatalf("work waiting 30s of 1m reported stuck: %v", err)
	}
	c.Failed(errors.New("catalog down"))
	now = now.Add(time.Minute)
	err := c.Check()
	if err == nil || !strings.Contains(err.Error(), "read-model committer") || !strings.Contains(err.Error(), "catalog down") {
		t.Fatalf("stuck committer: %v", err)
	}
	c.Committed(now)
	if err := c.Check(); err != nil {
		t.Fatalf("after a commit: %v", err)
	}
	if !c.LastCommit().Equal(now) {
		t.Fatal("last commit not recorded")
	}
}
