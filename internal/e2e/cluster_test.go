package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// lake is a shared deployment started by a test: one `eventlake broker`
// process (persisted, on a fixed port so it can be restarted), a catalog
// (SQLite or a PostgreSQL cluster) and a warehouse (local or an S3
// server), and any number of `eventlake ingest` processes.
type testLake struct {
	t          *testing.T
	dir        string
	brokerPort int
	brokerDir  string
	broker     *th.Proc
	addr       string
	s3         *th.S3Server
	pg         *th.Postgres
	catEnv     []string // EVENTLAKE_CATALOG_* of every process
	catCfg     lake.Config
	restSecret string // the REST case's S3 secret, which no process may log

	mu      sync.Mutex
	ingests map[string]*th.Proc
	gen     int
	seeds   []produced
}

// produced is one producer run, for the ground truth.
type produced struct {
	seed  uint64
	count int
	start time.Time
	step  time.Duration
}

type lakeOpts struct {
	postgres bool // PostgreSQL catalog instead of SQLite
	s3       bool // S3 warehouse (versitygw) instead of a local directory
	// s3Endpoint overrides the endpoint processes use (a fault proxy).
	s3Endpoint func(s3 *th.S3Server) string
	// rest uses the REST catalog (and its warehouse) named by the
	// EVENTLAKE_TEST_REST_* variables `make test-rest` sets.
	rest bool
}

func newLake(t *testing.T, o lakeOpts) *testLake {
	t.Helper()
	dir := t.TempDir()
	l := &testLake{t: t, dir: dir, brokerPort: th.FreePort(t), brokerDir: filepath.Join(dir, "broker"), ingests: map[string]*th.Proc{}}
	l.startBroker()
	cfg := lake.Config{}
	cfg.Defaults(filepath.Join(dir, "data"))
	if o.postgres {
		l.pg = th.StartPostgres(t)
		uri := l.pg.URIWithDB("lake")
		l.catEnv = append(l.catEnv, "EVENTLAKE_CATALOG_TYPE=postgres", "EVENTLAKE_CATALOG_URI="+uri)
		cfg.Type, cfg.URI = lake.TypePostgres, uri
	}
	if o.s3 {
		l.s3 = th.StartS3(t)
		env := l.s3.Env("wh")
		ep := l.s3.Endpoint
		if o.s3Endpoint != nil {
			ep = o.s3Endpoint(l.s3)
			env = append(env, "EVENTLAKE_CATALOG_S3_ENDPOINT="+ep)
		}
		// Short timeouts so that faults surface within the test's time.
		env = append(env, "EVENTLAKE_CATALOG_S3_RESPONSE_TIMEOUT=5s", "EVENTLAKE_CATALOG_S3_CONNECT_TIMEOUT=2s")
		l.catEnv = append(l.catEnv, env...)
		cfg.Warehouse = l.s3.Warehouse("wh")
		cfg.S3.Endpoint, cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey = l.s3.Endpoint, l.s3.AccessKey, l.s3.SecretKey
	}
	if o.rest {
		ns := "l" + strings.ToLower(th.RandomID())
		cfg.Type, cfg.URI, cfg.Warehouse, cfg.Namespace = lake.TypeREST, os.Getenv("EVENTLAKE_TEST_REST_URI"), os.Getenv("EVENTLAKE_TEST_REST_WAREHOUSE"), ns
		cfg.SigV4 = os.Getenv("EVENTLAKE_TEST_REST_SIGV4") == "1"
		cfg.S3.Endpoint = os.Getenv("EVENTLAKE_TEST_REST_S3_ENDPOINT")
		cfg.S3.AccessKeyID = os.Getenv("EVENTLAKE_TEST_REST_S3_ACCESS_KEY")
		cfg.S3.SecretAccessKey = os.Getenv("EVENTLAKE_TEST_REST_S3_SECRET_KEY")
		l.restSecret = cfg.S3.SecretAccessKey
		l.catEnv = append(l.catEnv, "EVENTLAKE_CATALOG_TYPE=rest", "EVENTLAKE_CATALOG_URI="+cfg.URI,
			"EVENTLAKE_CATALOG_WAREHOUSE="+cfg.Warehouse, "EVENTLAKE_CATALOG_NAMESPACE="+ns,
			"EVENTLAKE_CATALOG_SIGV4="+strconv.FormatBool(cfg.SigV4),
			"EVENTLAKE_CATALOG_S3_ENDPOINT="+cfg.S3.Endpoint,
			"EVENTLAKE_CATALOG_S3_ACCESS_KEY_ID="+cfg.S3.AccessKeyID,
			"EVENTLAKE_CATALOG_S3_SECRET_ACCESS_KEY="+cfg.S3.SecretAccessKey,
			// A REST catalog has no SQL database for the built-in schema
			// registry: the processes share a SQLite file.
			"EVENTLAKE_SCHEMA_REGISTRY_DATABASE="+filepath.Join(dir, "registry.db"))
	}
	l.catCfg = cfg
	return l
}

func (l *testLake) startBroker() {
	l.t.Helper()
	l.broker = th.Start(l.t, "broker", nil, "broker", "--data-dir", l.brokerDir,
		"--listen", "127.0.0.1:"+strconv.Itoa(l.brokerPort), "--topics", "orders.created:6,inventory.updated:3")
	l.addr = l.broker.Ready["kafka"]
}

// restartBroker kills the broker (SIGKILL: its log is persisted
// acknowledged write by write) and starts it again on the same port and
// data directory after down.
func (l *testLake) restartBroker(down time.Duration) {
	l.t.Helper()
	l.broker.Kill()
	time.Sleep(down)
	l.startBroker()
}

// ingestEnv is the environment of every ingest process: the catalog,
// short flushes (many commits), a short session timeout.
func (l *testLake) ingestEnv(extra ...string) []string {
	env := append([]string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=200ms", "EVENTLAKE_LOG_LEVEL=info",
		"EVENTLAKE_INGEST_SESSION_TIMEOUT=6s", "EVENTLAKE_INGEST_COMMIT_RETRY_MAX=2s", "EVENTLAKE_INGEST_COMMIT_TIMEOUT=10s"}, l.catEnv...)
	return append(env, extra...)
}

// startIngest starts an ingest process named name (its static group
// member id when static is true) and waits for it to be ready.
func (l *testLake) startIngest(name string, static bool, extra ...string) *th.Proc {
	l.t.Helper()
	env := l.ingestEnv(extra...)
	if static {
		env = append(env, "EVENTLAKE_INGEST_INSTANCE_ID="+name)
	}
	l.mu.Lock()
	l.gen++
	n := l.gen
	l.mu.Unlock()
	p := th.Start(l.t, fmt.Sprintf("%s-%d", name, n), env, "ingest", "--brokers", l.addr,
		"--data-dir", filepath.Join(l.dir, "data"), "--http", "127.0.0.1:0")
	l.mu.Lock()
	l.ingests[name] = p
	l.mu.Unlock()
	return p
}

// produce starts `eventlake produce` with a seed of its own and records
// it for the ground truth.
func (l *testLake) produce(seed uint64, count, rate int) *th.Proc {
	l.t.Helper()
	// Event time stays in the past: the envelope contract sends events
	// more than an hour ahead of the wall clock to the dead-letter table.
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).Add(time.Duration(seed%48) * time.Hour)
	step := 5 * time.Millisecond
	l.mu.Lock()
	l.seeds = append(l.seeds, produced{seed: seed, count: count, start: start, step: step})
	l.mu.Unlock()
	return th.StartNoWait(l.t, fmt.Sprintf("produce-%d", seed), nil, "produce", "--brokers", l.addr,
		"--rate", strconv.Itoa(rate), "--count", strconv.Itoa(count), "--seed", strconv.FormatUint(seed, 10),
		"--start", start.Format(time.RFC3339), "--step", step.String(), "--malformed-fraction", "0.01")
}

// waitProduced waits for a producer to finish successfully.
func (l *testLake) waitProduced(p *th.Proc, d time.Duration) {
	l.t.Helper()
	th.Eventually(l.t, d, "producer to finish", func() (bool, string) {
		done, err := p.Exited()
		if done && err != nil {
			l.t.Fatalf("producer failed: %v\n%s", err, p.Log())
		}
		return done, "running"
	})
}

// truth is the union of every producer run.
func (l *testLake) truth() truth {
	var all truth
	all.ordersByMinute = map[int64]minuteTruth{}
	for _, p := range l.seeds {
		tr := groundTruth(p.seed, p.count, p.start, p.step, 0.01)
		all.orders = append(all.orders, tr.orders...)
		all.inventory = append(all.inventory, tr.inventory...)
		all.malformed += tr.malformed
		for m, v := range tr.ordersByMinute {
			mt := all.ordersByMinute[m]
			mt.cents += v.cents
			mt.count += v.count
			all.ordersByMinute[m] = mt
		}
	}
	return all
}

func (l *testLake) total() int64 {
	var n int64
	for _, p := range l.seeds {
		n += int64(p.count)
	}
	return n
}

// open opens the lake's catalog in the test process (an independent
// reader).
func (l *testLake) open() *lake.Catalog {
	l.t.Helper()
	cfg := l.catCfg
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cat.Close() })
	return cat
}

// waitCaughtUp waits until the raw tables store offsets covering every
// produced record.
func (l *testLake) waitCaughtUp(cat *lake.Catalog, d time.Duration) {
	l.t.Helper()
	want := l.total()
	th.Eventually(l.t, d, "ingest to catch up", func() (bool, string) {
		var stored int64
		for _, name := range []string{"orders_raw", "inventory_raw"} {
			stored += storedOffsets(l.t, cat, name).Total()
		}
		return stored >= want, fmt.Sprintf("raw tables cover %d of %d records", stored, want)
	})
}

// assertExactlyOnce checks that the lake holds every produced event once,
// every malformed message once in the dead-letter table, and offsets
// covering every record.
func (l *testLake) assertExactlyOnce(cat *lake.Catalog) {
	l.t.Helper()
	want := l.truth()
	assertSameSet(l.t, "orders_raw", tableStrings(l.t, cat, "orders_raw", "event_id"), want.orders)
	assertSameSet(l.t, "inventory_raw", tableStrings(l.t, cat, "inventory_raw", "event_id"), want.inventory)
	if d := tableRowCount(l.t, cat, "dlq"); d != int64(want.malformed) {
		l.t.Fatalf("dlq holds %d rows, %d malformed messages were produced", d, want.malformed)
	}
	var stored int64
	for _, name := range []string{"orders_raw", "inventory_raw"} {
		stored += storedOffsets(l.t, cat, name).Total()
	}
	if stored != l.total() {
		l.t.Fatalf("raw tables store offsets covering %d records, %d were produced", stored, l.total())
	}
}

// stopAll stops every running ingest process cleanly.
func (l *testLake) stopAll() {
	l.t.Helper()
	l.mu.Lock()
	procs := make([]*th.Proc, 0, len(l.ingests))
	for _, p := range l.ingests {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		if done, _ := p.Exited(); done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(60 * time.Second); err != nil {
				l.t.Errorf("clean shutdown: %v", err)
			}
		}()
	}
	wg.Wait()
}

// metric reads a process's /metrics and returns the sample name, or the
// sum of every series of name when it carries no label selector (e.g.
// eventlake_ingest_state{state="paused"} or eventlake_ingest_pauses_total).
// Anything but a value read fails the test: the endpoint not answering 200,
// no such series, a value that does not parse. A sentinel such as -1 would
// satisfy the callers' guards (`== 0`, `== 1`) on nothing.
func metric(t *testing.T, p *th.Proc, name string) float64 {
	t.Helper()
	v, ok := scrapeMetric(t, p, name)
	if !ok {
		t.Fatalf("/metrics of pid %d at %s has no series %s", p.Pid(), p.Ready["http"], name)
	}
	return v
}

// metricOrZero is metric for a labelled counter (a *prometheus.CounterVec)
// whose series appear only when first counted: no series means nothing was
// counted yet, so 0. Every other failure still fails the test. Use it only
// where 0 is the answer that makes the caller's check fail or is merely
// logged, never to tolerate an absent plain counter or gauge.
func metricOrZero(t *testing.T, p *th.Proc, name string) float64 {
	t.Helper()
	v, _ := scrapeMetric(t, p, name)
	return v
}

// scrapeMetric reads name from a process's /metrics in the Prometheus text
// format; ok is false when no series matched. It fails the test on an
// HTTP error, a non-200 answer or a matching line it cannot parse.
func scrapeMetric(t *testing.T, p *th.Proc, name string) (sum float64, ok bool) {
	t.Helper()
	url := "http://" + p.Ready["http"] + "/metrics"
	// Bounded: a process that hangs fails the test instead of stalling it
	// until the suite's timeout.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("scrape %s (pid %d) for %s: %v", url, p.Pid(), name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s (pid %d) for %s: HTTP %d", url, p.Pid(), name, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// A sample line is `series value [timestamp]`; the series ends at
		// the closing brace of its labels (label values may hold spaces),
		// or at the first space when it has none.
		end := strings.IndexByte(line, ' ')
		if i := strings.IndexByte(line, '{'); i >= 0 && (end < 0 || i < end) {
			end = strings.LastIndexByte(line, '}') + 1
		}
		if end <= 0 {
			continue
		}
		key := line[:end]
		if key != name && !(strings.HasPrefix(key, name+"{") && !strings.Contains(name, "{")) {
			continue
		}
		f := strings.Fields(line[end:])
		if len(f) == 0 {
			t.Fatalf("scrape %s (pid %d): no value in %q", url, p.Pid(), line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("scrape %s (pid %d): value of %q: %v", url, p.Pid(), line, err)
		}
		sum += v
		ok = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s (pid %d): read: %v", url, p.Pid(), err)
	}
	return sum, ok
}

// jitter returns a duration in [lo, hi).
func jitter(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}
