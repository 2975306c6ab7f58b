package streamer

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/zeebo/xxh3"
)

// fakeClock is an injected processing-time clock (event time comes from the
// events themselves).
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

func TestTumblingAndHoppingBoundaries(t *testing.T) {
	clk := &fakeClock{t: t0}
	w := newWindows(DefaultWindows(), 30*time.Second, time.Minute, clk.now)
	// 10:00:00.000 and 10:00:59.999999 are in minute 10:00; 10:01:00 is not.
	w.add(at(0), decimal128.FromI64(100), xxh3.HashString("u1"), "p1")
	w.add(at(time.Minute-time.Microsecond), decimal128.FromI64(200), xxh3.HashString("u2"), "p1")
	w.add(at(time.Minute), decimal128.FromI64(400), xxh3.HashString("u3"), "p2")

	byStart := func(spec string) map[string]WindowResult {
		m := map[string]WindowResult{}
		for _, r := range w.current(spec) {
			m[r.Start.Format("15:04")] = r
		}
		return m
	}
	m1 := byStart("1m")
	if m1["10:00"].RevenueCents != decimal128.FromI64(300) || m1["10:00"].Orders != 2 || m1["10:01"].RevenueCents != decimal128.FromI64(400) {
		t.Fatalf("1m windows: %+v", m1)
	}
	if r := byStart("5m")["10:00"]; r.RevenueCents != decimal128.FromI64(700) || r.Orders != 3 || r.ActiveUsers != 3 {
		t.Fatalf("5m window: %+v", r)
	}
	// Hopping 5m every 1m: 10:00:30 belongs to windows starting 09:56..10:00.
	hop := byStart("5m_every_1m")
	for _, start := range []string{"09:56", "09:57", "09:58", "09:59", "10:00"} {
		if hop[start].Orders < 2 {
			t.Fatalf("hopping window %s has %d orders, want >= 2: %+v", start, hop[start].Orders, hop)
		}
	}
	if hop["10:01"].Orders != 1 || hop["10:01"].RevenueCents != decimal128.FromI64(400) {
		t.Fatalf("hopping window 10:01: %+v", hop["10:01"])
	}
	if hop["10:00"].ProductRevenue["p2"] != "4.00" || hop["10:00"].ProductRevenue["p1"] != "3.00" {
		t.Fatalf("per-product revenue: %+v", hop["10:00"].ProductRevenue)
	}
}

func TestWatermarkClosesAndLateness(t *testing.T) {
	clk := &fakeClock{t: t0}
	w := newWindows([]WindowSpec{{Name: "1m", Size: time.Minute, Slide: time.Minute}}, 30*time.Second, time.Hour, clk.now)
	w.add(at(10*time.Second), decimal128.FromI64(100), 1, "p")
	if got := w.closeDue(); len(got) != 0 {
		t.Fatalf("closed too early: %+v", got)
	}
	// Max event time 10:01:29: watermark 10:00:59 < 10:01 -> still open.
	w.add(at(89*time.Second), decimal128.FromI64(1), 2, "p")
	if got := w.closeDue(); len(got) != 0 {
		t.Fatalf("window closed before the watermark reached its end: %+v", got)
	}
	// Within lateness: 10:00:50 arrives after 10:01:29 and still counts.
	if late := w.add(at(50*time.Second), decimal128.FromI64(10), 3, "p"); late {
		t.Fatal("event within the allowed lateness reported late")
	}
	// Watermark reaches 10:01:00 -> the 10:00 window is final.
	w.add(at(90*time.Second), decimal128.FromI64(1), 4, "p")
	got := w.closeDue()
	if len(got) != 1 || !got[0].Final || got[0].RevenueCents != decimal128.FromI64(110) || got[0].Orders != 2 {
		t.Fatalf("closed windows: %+v", got)
	}
	// Beyond lateness: 10:00:40 now belongs only to a closed window.
	if late := w.add(at(40*time.Second), decimal128.FromI64(1000), 5, "p"); !late {
		t.Fatal("event beyond the allowed lateness not reported late")
	}
	if w.late != 1 {
		t.Fatalf("late counter %d, want 1", w.late)
	}
	for _, r := range w.current("1m") {
		if r.Start.Equal(t0) {
			t.Fatalf("a late event reopened the closed window: %+v", r)
		}
	}
}

func TestIdleAdvancesWatermark(t *testing.T) {
	clk := &fakeClock{t: t0}
	w := newWindows([]WindowSpec{{Name: "1m", Size: time.Minute, Slide: time.Minute}}, 10*time.Second, 5*time.Second, clk.now)
	w.tick()
	w.add(at(30*time.Second), decimal128.FromI64(5), 1, "p")
	for i := 0; i < 10; i++ { // 50 s of processing time, no events
		clk.advance(5 * time.Second)
		w.tick()
	}
	got := w.closeDue()
	if len(got) != 1 || got[0].RevenueCents != decimal128.FromI64(5) {
		t.Fatalf("idle stream did not close its last window: %+v", got)
	}
}

func TestActiveUsersEstimate(t *testing.T) {
	clk := &fakeClock{t: t0}
	w := newWindows([]WindowSpec{{Name: "5m", Size: 5 * time.Minute, Slide: 5 * time.Minute}}, time.Minute, time.Hour, clk.now)
	const users = 20000
	for i := 0; i < 3*users; i++ {
		u := xxh3.HashString(fmt.Sprint("u-", i%users))
		w.add(at(time.Duration(i%240)*time.Second), decimal128.FromI64(1), u, "p")
	}
	r := w.current("5m")[0]
	if diff := float64(r.ActiveUsers) - users; diff > 0.05*users || diff < -0.05*users {
		t.Fatalf("active users estimate %d for %d users is beyond the stated error", r.ActiveUsers, users)
	}
}
