//go:build faults

package e2e

// The fault suite (`make test-faults`): several `eventlake ingest`
// processes on one consumer group against a PostgreSQL catalog and an S3
// warehouse (versitygw), under the faults that make other lakehouses lose
// or duplicate data: kill -9 during commits, rebalances, object storage
// and catalog outages, broker restarts, writers racing on one table.
// Every scenario ends by checking, against the generator's ground truth
// (same seed), that the lake holds every produced event exactly once.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/ingest"
	"github.com/eventlake/eventlake/internal/failpoint"
	th "github.com/eventlake/eventlake/internal/testharness"
)

// finish waits for the producers, lets ingest catch up, stops every ingest
// process cleanly and checks the lake.
func (l *testLake) finish(prods ...*th.Proc) {
	l.t.Helper()
	for _, p := range prods {
		l.waitProduced(p, 3*time.Minute)
	}
	cat := l.open()
	l.waitCaughtUp(cat, 3*time.Minute)
	l.stopAll()
	l.assertExactlyOnce(cat)
}

// TestFaultKillOneOfThree kills one of three ingest processes with
// SIGKILL at random moments (and at points of the commit protocol) while
// a producer runs, restarting it each time under its static member id.
func TestFaultKillOneOfThree(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prods := []*th.Proc{l.produce(11, 36_000, 3000)}
	topUp := uint64(1100) // seeds of the producers awaitFailpoint adds
	names := []string{"i0", "i1", "i2"}
	for _, n := range names {
		l.startIngest(n, true)
	}
	points := []string{ingest.FailBeforeCommit, ingest.FailAfterDLQCommit, ingest.FailAfterRawCommit, ingest.FailBeforeKafkaCommit}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 8; i++ {
		time.Sleep(jitter(rng, 500*time.Millisecond, 1500*time.Millisecond))
		n := names[rng.IntN(len(names))]
		l.mu.Lock()
		p := l.ingests[n]
		l.mu.Unlock()
		if done, err := p.Exited(); done {
			t.Fatalf("kill %d: %s exited on its own: %v", i, n, err)
		}
		p.Kill()
		fp := ""
		if i < len(points) {
			// The next incarnation kills itself at a protocol point.
			fp = fmt.Sprintf("%s=%d", points[i], 1+rng.IntN(3))
		}
		var extra []string
		if fp != "" {
			extra = append(extra, failpoint.EnvVar+"="+fp)
		}
		np := l.startIngest(n, true, extra...)
		t.Logf("kill %d: %s restarted (%v)", i, n, extra)
		if fp != "" {
			// Every armed point must be exercised before the process is
			// replaced.
			waited := time.Now()
			prods = l.awaitFailpoint(np, fp, 60*time.Second, prods, &topUp)
			t.Logf("%s killed itself at %s after %v", n, fp, time.Since(waited).Round(time.Millisecond))
			l.startIngest(n, true)
		}
	}
	l.finish(prods...)
}

// awaitFailpoint waits up to d for p to kill itself at its armed failpoint
// fp, and fails the test if it does not, or exits any other way (nothing
// else sends it SIGKILL). The commit protocol's points are reached only by
// a batch that holds records, so while no producer runs it starts a short
// one (seed *seed, then the next; its events join the ground truth); it
// returns every producer to wait for.
func (l *testLake) awaitFailpoint(p *th.Proc, fp string, d time.Duration, prods []*th.Proc, seed *uint64) []*th.Proc {
	l.t.Helper()
	th.Eventually(l.t, d, "failpoint "+fp, func() (bool, string) {
		if done, _ := p.Exited(); done {
			return true, ""
		}
		for _, pr := range prods {
			done, err := pr.Exited()
			if done && err != nil {
				l.t.Fatalf("producer failed: %v\n%s", err, pr.Log())
			}
			if !done {
				return false, "not reached yet"
			}
		}
		prods = append(prods, l.produce(*seed, 6000, 3000))
		l.t.Logf("every producer done before %s fired: started producer %d", fp, *seed)
		*seed++
		return false, "not reached yet; producers were done, started another"
	})
	if _, err := p.Exited(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
		l.t.Fatalf("ingest with failpoint %s exited with %v, not at the failpoint\n%s", fp, err, p.Log())
	}
	return prods
}

// TestFaultRebalance adds and removes ingest processes (dynamic members,
// so every change is a real rebalance) during a steady produce: the
// revoked owner commits before the partitions move, a removed process
// that did not leave (SIGKILL) is fenced by the offsets its successor
// loaded.
func TestFaultRebalance(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prod := l.produce(12, 45_000, 3000)
	l.startIngest("r0", false)
	time.Sleep(2 * time.Second)
	l.startIngest("r1", false)
	time.Sleep(2 * time.Second)
	l.startIngest("r2", false)
	time.Sleep(2 * time.Second)
	stop := func(n string, kill bool) {
		l.mu.Lock()
		p := l.ingests[n]
		l.mu.Unlock()
		if kill {
			p.Kill()
		} else if err := p.Stop(60 * time.Second); err != nil {
			t.Fatalf("stop %s: %v", n, err)
		}
	}
	stop("r1", false) // leaves the group: partitions move at once
	time.Sleep(2 * time.Second)
	l.startIngest("r3", false)
	time.Sleep(2 * time.Second)
	stop("r0", true) // silent until its session times out
	time.Sleep(3 * time.Second)
	l.startIngest("r4", false)
	l.finish(prod)
}

// TestFaultS3Outage stops the S3 server for 30 s under a steady produce.
// Ingest must pause (reported in /metrics), keep its memory bounded, and
// resume when the server is back, with nothing lost or doubled.
func TestFaultS3Outage(t *testing.T) {
	// The bound for process_resident_memory_bytes of an ingest process
	// during the outage: a paused process holds no batch and fetches
	// nothing, so it stays near its steady-state size (measured peak
	// 275-278 MiB at 3000 events/s with the default 500k-id dedupe window
	// and Go's lazy return of freed memory); 400 MiB leaves headroom and
	// still catches a buffer that grows with the outage (3000 events/s of
	// ~330 bytes buffered for 30 s would add ~30 MiB of raw bytes and
	// several times that in Arrow builders and Parquet pages).
	const rssBound = 400 << 20
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prod := l.produce(13, 150_000, 3000)
	a := l.startIngest("s0", true)
	b := l.startIngest("s1", true)
	time.Sleep(5 * time.Second)

	l.s3.Stop()
	t.Log("s3 stopped")
	var peak float64
	sawPaused := false
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, p := range []*th.Proc{a, b} {
			peak = max(peak, metric(t, p, "process_resident_memory_bytes"))
			if metric(t, p, `eventlake_ingest_state{state="paused"}`) == 1 {
				sawPaused = true
			}
		}
	}
	l.s3.Start()
	t.Logf("s3 restarted; peak ingest RSS during the outage %.0f MiB (bound %d MiB)", peak/(1<<20), rssBound>>20)
	if peak > rssBound {
		t.Fatalf("ingest RSS reached %.0f MiB during the outage, bound %d MiB", peak/(1<<20), rssBound>>20)
	}
	if !sawPaused {
		t.Fatal("no ingest process reported eventlake_ingest_state{state=\"paused\"} during the outage")
	}
	if !strings.Contains(a.Log()+b.Log(), "ingest paused") {
		t.Fatal("no ingest process logged that it paused")
	}
	if metric(t, a, "eventlake_ingest_pauses_total")+metric(t, b, "eventlake_ingest_pauses_total") == 0 {
		t.Fatal("eventlake_ingest_pauses_total stayed 0")
	}
	l.finish(prod)
}

// TestFaultS3ErrorsAndSlowness puts a fault proxy in front of the S3
// server: first a third of requests answered 503 SlowDown, then every
// request delayed, then healed.
func TestFaultS3ErrorsAndSlowness(t *testing.T) {
	var proxy *th.HTTPFaultProxy
	l := newLake(t, lakeOpts{postgres: true, s3: true, s3Endpoint: func(s *th.S3Server) string {
		proxy = th.StartHTTPFaultProxy(t, s.Endpoint)
		return proxy.URL
	}})
	prod := l.produce(14, 45_000, 3000)
	l.startIngest("e0", true)
	l.startIngest("e1", true)
	time.Sleep(2 * time.Second)
	proxy.SetErrorRate(0.33)
	time.Sleep(8 * time.Second)
	proxy.SetErrorRate(0)
	proxy.SetDelay(300 * time.Millisecond)
	time.Sleep(8 * time.Second)
	proxy.Heal()
	t.Logf("proxy: %d requests, %d answered 503", proxy.Requests.Load(), proxy.Injected.Load())
	if proxy.Injected.Load() == 0 {
		t.Fatal("no fault was injected")
	}
	l.finish(prod)
}

// TestFaultPostgresRestart restarts the catalog database twice under a
// steady produce.
func TestFaultPostgresRestart(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prod := l.produce(15, 45_000, 3000)
	l.startIngest("p0", true)
	l.startIngest("p1", true)
	time.Sleep(3 * time.Second)
	l.pg.Restart(3 * time.Second)
	t.Log("postgres restarted")
	time.Sleep(3 * time.Second)
	l.pg.Restart(500 * time.Millisecond)
	t.Log("postgres restarted again")
	l.finish(prod)
}

// TestFaultCommitOutcomeUnknown stalls the catalog connection (requests
// reach PostgreSQL, answers do not come back), so commit attempts time out
// after sending; ingest must look each one up by its commit id before
// retrying.
func TestFaultCommitOutcomeUnknown(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	proxy := th.StartTCPFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", l.pg.Port))
	viaProxy := strings.Replace(l.pg.URIWithDB("lake"), fmt.Sprintf(":%d/", l.pg.Port), fmt.Sprintf(":%d/", proxy.Port()), 1)
	for i, kv := range l.catEnv {
		if strings.HasPrefix(kv, "EVENTLAKE_CATALOG_URI=") {
			l.catEnv[i] = "EVENTLAKE_CATALOG_URI=" + viaProxy
		}
	}
	prod := l.produce(16, 30_000, 3000)
	a := l.startIngest("u0", true, "EVENTLAKE_INGEST_COMMIT_TIMEOUT=2s")
	time.Sleep(3 * time.Second)
	for range 3 {
		proxy.Stall()
		time.Sleep(3 * time.Second)
		proxy.Unstall()
		time.Sleep(2 * time.Second)
	}
	// A counter per table: no series yet means no attempt failed.
	if metricOrZero(t, a, "eventlake_ingest_commit_errors_total") == 0 {
		t.Fatal("no commit attempt failed while the catalog connection was stalled")
	}
	l.finish(prod)
}

// TestFaultBrokerRestart kills the `eventlake broker` process (its log is
// persisted in its data directory) and starts it again on the same port
// while producers and two ingest processes run.
func TestFaultBrokerRestart(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prod := l.produce(17, 9000, 3000)
	l.startIngest("k0", true)
	l.startIngest("k1", true)
	l.waitProduced(prod, time.Minute)
	time.Sleep(time.Second)
	l.restartBroker(3 * time.Second)
	t.Log("broker restarted")
	prod2 := l.produce(18, 9000, 3000)
	time.Sleep(2 * time.Second)
	l.restartBroker(time.Second)
	t.Log("broker restarted again")
	l.finish(prod2)
}

// TestFaultTwoWritersRace runs two ingest processes in different consumer
// groups: both consume every partition and race to commit the same
// offsets to the same tables. The per-partition fence lets exactly one
// commit of each range through; the loser re-reads from what the winner
// stored.
func TestFaultTwoWritersRace(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true, s3: true})
	prod := l.produce(19, 30_000, 3000)
	a := l.startIngest("w0", false, "EVENTLAKE_INGEST_GROUP=writers-a")
	b := l.startIngest("w1", false, "EVENTLAKE_INGEST_GROUP=writers-b")
	l.waitProduced(prod, 2*time.Minute)
	cat := l.open()
	l.waitCaughtUp(cat, 3*time.Minute)
	fenced := metric(t, a, "eventlake_ingest_batches_fenced_total") + metric(t, b, "eventlake_ingest_batches_fenced_total")
	// Conflicts are counted per table (no series until the first) and only
	// logged: the fence, not a conflict, is what a race must show.
	conflicts := metricOrZero(t, a, "eventlake_ingest_commit_conflicts_total") + metricOrZero(t, b, "eventlake_ingest_commit_conflicts_total")
	t.Logf("fenced batches %v, commit conflicts %v", fenced, conflicts)
	if fenced == 0 {
		t.Fatal("the two writers never raced (no batch was fenced)")
	}
	l.stopAll()
	l.assertExactlyOnce(cat)
}
