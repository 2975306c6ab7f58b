package main

// Scale-out benchmarks (`-scale`): ingest throughput with one and three
// `eventlake ingest` processes on one consumer group, on a local
// warehouse (SQLite catalog) and on S3 (versitygw, PostgreSQL catalog),
// and query latencies over S3-resident data with a cold and a warm local
// cache. They need versitygw and PostgreSQL's server binaries, like the
// fault suite.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventlake/eventlake/lake"
)

type scaleEnv struct {
	work       string
	s3Endpoint string
	s3Key      string
	s3Secret   string
	pgURI      string
	stop       []func()
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(port int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("port %d not open after %v", port, d)
}

func lookBin(name string, extra ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extra {
		if m, _ := filepath.Glob(filepath.Join(d, name)); len(m) > 0 {
			return m[len(m)-1]
		}
	}
	return ""
}

// startServers starts versitygw and a PostgreSQL cluster on loopback.
func startServers(work string) (*scaleEnv, error) {
	e := &scaleEnv{work: work, s3Key: "ELBENCH", s3Secret: "bench-secret-" + strconv.Itoa(os.Getpid())}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	vgw := lookBin("versitygw", filepath.Join(strings.TrimSpace(string(gopath)), "bin"))
	if vgw == "" {
		return nil, fmt.Errorf("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	root := filepath.Join(work, "s3")
	if err := os.MkdirAll(filepath.Join(root, "lake"), 0o755); err != nil {
		return nil, err
	}
	port := freePort()
	cmd := exec.Command(vgw, "--access", e.s3Key, "--secret", e.s3Secret, "--port", "127.0.0.1:"+strconv.Itoa(port), "--quiet", "posix", root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e.stop = append(e.stop, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	if err := waitPort(port, 15*time.Second); err != nil {
		e.close()
		return nil, err
	}
	e.s3Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)

	initdb := lookBin("initdb", "/usr/lib/postgresql/*/bin")
	if initdb == "" {
		e.close()
		return nil, fmt.Errorf("initdb not found (apt-get install postgresql)")
	}
	bin := filepath.Dir(initdb)
	pgdir, err := os.MkdirTemp("", "eventlake-bench-pg-")
	if err != nil {
		e.close()
		return nil, err
	}
	e.stop = append(e.stop, func() { os.RemoveAll(pgdir) })
	wrap := func(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			e.close()
			return nil, fmt.Errorf("postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chown(pgdir, uid, gid)
		wrap = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	data := filepath.Join(pgdir, "data")
	if out, err := wrap(filepath.Join(bin, "initdb"), "-D", data, "-U", "eventlake", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	pgPort := freePort()
	pg := wrap(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(pgPort), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+pgdir, "-c", "fsync=off", "-c", "max_connections=200")
	pg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := pg.Start(); err != nil {
		e.close()
		return nil, err
	}
	e.stop = append(e.stop, func() { _ = syscall.Kill(-pg.Process.Pid, syscall.SIGINT); _ = pg.Wait() })
	if err := waitPort(pgPort, 30*time.Second); err != nil {
		e.close()
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	e.pgURI = fmt.Sprintf("postgres://eventlake@127.0.0.1:%d/postgres?sslmode=disable", pgPort)
	return e, nil
}

func (e *scaleEnv) close() {
	for i := len(e.stop) - 1; i >= 0; i-- {
		e.stop[i]()
	}
}

// lakeEnv is the catalog configuration of one benchmark lake.
func (e *scaleEnv) lakeEnv(s3 bool, prefix string) ([]string, lake.Config) {
	cfg := lake.Config{}
	if !s3 {
		dir := filepath.Join(e.work, prefix)
		cfg.Defaults(dir)
		return []string{"EVENTLAKE_CATALOG_URI=" + cfg.URI, "EVENTLAKE_CATALOG_WAREHOUSE=" + cfg.Warehouse}, cfg
	}
	cfg.Defaults("")
	cfg.Type, cfg.URI = lake.TypePostgres, e.pgURI
	cfg.Warehouse = "s3://lake/" + prefix
	cfg.Namespace = prefix
	cfg.S3.Endpoint, cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey = e.s3Endpoint, e.s3Key, e.s3Secret
	return []string{
		"EVENTLAKE_CATALOG_TYPE=postgres", "EVENTLAKE_CATALOG_URI=" + e.pgURI, "EVENTLAKE_CATALOG_NAMESPACE=" + prefix,
		"EVENTLAKE_CATALOG_WAREHOUSE=" + cfg.Warehouse, "EVENTLAKE_CATALOG_S3_ENDPOINT=" + e.s3Endpoint,
		"EVENTLAKE_CATALOG_S3_ACCESS_KEY_ID=" + e.s3Key, "EVENTLAKE_CATALOG_S3_SECRET_ACCESS_KEY=" + e.s3Secret,
	}, cfg
}

// lakeOffsets sums the offsets the raw tables store.
func lakeOffsets(ctx context.Context, cat *lake.Catalog) int64 {
	var n int64
	for _, t := range []string{"orders_raw", "inventory_raw"} {
		tbl, err := cat.LoadTable(ctx, t)
		if err != nil {
			continue
		}
		if o, err := lake.StoredOffsets(tbl); err == nil {
			n += o.Total()
		}
	}
	return n
}

// ingestScale pre-produces n events and ingests them with procs processes
// on one group; it returns events/s from the first start until the lake
// stores offsets covering every event.
func ingestScale(bin string, e *scaleEnv, addr string, n, procs int, s3 bool, prefix string) (float64, error) {
	env, cfg := e.lakeEnv(s3, prefix)
	env = append(env, "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s", "EVENTLAKE_INGEST_GROUP=bench-"+prefix)
	ctx := context.Background()
	began := time.Now()
	var ps []*proc
	defer func() {
		for _, p := range ps {
			p.stop()
		}
	}()
	for i := range procs {
		p, err := start(bin, append(env, "EVENTLAKE_INGEST_INSTANCE_ID="+prefix+"-"+strconv.Itoa(i)), "ingest", "--brokers", addr,
			"--data-dir", filepath.Join(e.work, prefix, "data"), "--http", "off")
		if err != nil {
			return 0, err
		}
		ps = append(ps, p)
	}
	var cat *lake.Catalog
	for {
		if time.Since(began) > 10*time.Minute {
			return 0, fmt.Errorf("%s: ingest did not finish in 10 minutes", prefix)
		}
		if cat == nil {
			c, err := lake.Open(ctx, cfg)
			if err == nil {
				cat = c
				defer cat.Close()
			}
		}
		if cat != nil && lakeOffsets(ctx, cat) >= int64(n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return float64(n) / time.Since(began).Seconds(), nil
}

func benchScale(bin, work string, n, dayEvents, runs int) ([]result, error) {
	e, err := startServers(work)
	if err != nil {
		return nil, err
	}
	defer e.close()
	brk, err := start(bin, nil, "broker", "--data-dir", filepath.Join(work, "scale-broker"), "--listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer brk.stop()
	addr := brk.ready["kafka"]
	fmt.Fprintf(os.Stderr, "scale: producing %d events...\n", n)
	pc := exec.Command(bin, "produce", "--brokers", addr, "--rate", "0", "--count", strconv.Itoa(n), "--seed", "1",
		"--start", "2026-11-26T00:00:00Z", "--step", "1ms")
	if out, err := pc.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("produce: %v: %s", err, out)
	}
	var rs []result
	rates := map[string]float64{}
	for _, c := range []struct {
		s3    bool
		procs int
	}{{false, 1}, {false, 3}, {true, 1}, {true, 3}} {
		where := "local"
		if c.s3 {
			where = "s3"
		}
		key := fmt.Sprintf("%s%d", where, c.procs)
		fmt.Fprintf(os.Stderr, "scale: ingest, %s warehouse, %d process(es)...\n", where, c.procs)
		r, err := ingestScale(bin, e, addr, n, c.procs, c.s3, "scale"+key)
		if err != nil {
			return nil, err
		}
		rates[key] = r
	}
	how := fmt.Sprintf("%d pre-produced events (80%% orders), ingested by N `eventlake ingest` processes started together on one consumer group, flush_interval 1 s, static members; from the first start until the offsets stored in the lake cover every event (read from the catalog). local: SQLite catalog, local warehouse; s3: PostgreSQL catalog, versitygw warehouse, all on this 2-core machine", n)
	rs = append(rs,
		result{"ingest, 1 process, local warehouse", fmt.Sprintf("%.0f events/s", rates["local1"]), "", "", how},
		result{"ingest, 3 processes, local warehouse", fmt.Sprintf("%.0f events/s", rates["local3"]), "", "", "same; three processes share 2 cores, so the gain is availability, not speed"},
		result{"ingest, 1 process, S3 warehouse + PostgreSQL catalog", fmt.Sprintf("%.0f events/s", rates["s31"]), "", "", "same, data files uploaded to versitygw through iceberg-go's S3 FileIO"},
		result{"ingest, 3 processes, S3 warehouse + PostgreSQL catalog", fmt.Sprintf("%.0f events/s", rates["s33"]), "", "", "same, with commit conflicts resolved by refresh + re-commit"},
	)
	if dayEvents > 0 {
		q, err := queryS3(bin, e, work, dayEvents, runs)
		if err != nil {
			return nil, err
		}
		rs = append(rs, q...)
	}
	return rs, nil
}

// queryS3 ingests a day of orders into the S3 warehouse and measures the
// query service over it: cold (empty cache: time from start to the first
// answer, the cache filled at the first refresh) and warm.
func queryS3(bin string, e *scaleEnv, work string, n, runs int) ([]result, error) {
	step := time.Duration(int64(24*time.Hour) / int64(n))
	brk, err := start(bin, nil, "broker", "--data-dir", filepath.Join(work, "day-broker"), "--listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer brk.stop()
	addr := brk.ready["kafka"]
	fmt.Fprintf(os.Stderr, "scale: producing a day of %d orders...\n", n)
	pc := exec.Command(bin, "produce", "--brokers", addr, "--rate", "0", "--count", strconv.Itoa(n), "--seed", "1",
		"--start", "2026-11-25T00:00:00Z", "--step", step.String(), "--inventory-fraction", "0")
	if out, err := pc.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("produce: %v: %s", err, out)
	}
	if _, err := ingestScale(bin, e, addr, n, 1, true, "day"); err != nil {
		return nil, err
	}
	env, cfg := e.lakeEnv(true, "day")
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	var files int
	var bytes int64
	if tbl, err := cat.LoadTable(context.Background(), "orders_raw"); err == nil {
		if tasks, err := tbl.Scan().PlanFiles(context.Background()); err == nil {
			for _, t := range tasks {
				files++
				bytes += t.File.FileSizeBytes()
			}
		}
	}
	cat.Close()
	cacheDir := filepath.Join(work, "day-query", "s3cache")
	revenueURL := "/v1/metrics/order_revenue_minute?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"
	sqlText := fmt.Sprintf(revenueSQL, "orders", "")
	get := func(base string) (time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Get(base + revenueURL)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var body struct {
			Rows []json.RawMessage `json:"rows"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return 0, err
		}
		if resp.StatusCode != 200 || len(body.Rows) < 1440 { // late events add a minute or two before the day
			return 0, fmt.Errorf("revenue: HTTP %d, %d rows", resp.StatusCode, len(body.Rows))
		}
		return time.Since(t0), nil
	}
	post := func(base string) (time.Duration, error) {
		b, _ := json.Marshal(map[string]any{"sql": sqlText, "max_rows": 10000})
		t0 := time.Now()
		resp, err := client.Post(base+"/v1/sql", "application/json", strings.NewReader(string(b)))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("sql: HTTP %d", resp.StatusCode)
		}
		var body struct {
			RowCount int `json:"row_count"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	// Cold: empty cache, measured from process start to the first answer.
	startQuery := func() (*proc, string, time.Duration, error) {
		t0 := time.Now()
		q, err := start(bin, append(env, "EVENTLAKE_QUERY_S3_CACHE_DIR="+cacheDir), "query",
			"--data-dir", filepath.Join(work, "day-query"), "--http", "127.0.0.1:0", "--no-hot")
		if err != nil {
			return nil, "", 0, err
		}
		base := "http://" + q.ready["http"]
		if err := waitReady(base, 5*time.Minute); err != nil {
			q.stop()
			return nil, "", 0, err
		}
		return q, base, time.Since(t0), nil
	}
	q, base, coldStart, err := startQuery()
	if err != nil {
		return nil, err
	}
	coldRevenue, err := get(base)
	if err != nil {
		q.stop()
		return nil, err
	}
	var revLat, sqlLat []time.Duration
	for i := 0; i < runs+3; i++ {
		d, err := get(base)
		if err != nil {
			q.stop()
			return nil, err
		}
		s, err := post(base)
		if err != nil {
			q.stop()
			return nil, err
		}
		if i >= 3 {
			revLat, sqlLat = append(revLat, d), append(sqlLat, s)
		}
	}
	q.stop()
	// Restart on the warm cache: the files are found on disk and checked.
	q, base, warmStart, err := startQuery()
	if err != nil {
		return nil, err
	}
	warmFirst, err := get(base)
	q.stop()
	if err != nil {
		return nil, err
	}
	slices.Sort(revLat)
	slices.Sort(sqlLat)
	how := fmt.Sprintf("%d order.created events over one day ingested into the S3 warehouse (versitygw, PostgreSQL catalog): %d data files, %.0f MiB; `eventlake query` with its S3 cache", n, files, float64(bytes)/(1<<20))
	return []result{
		{"S3: query service start to ready (/readyz), cold cache", ms(coldStart), "", "", how + "; includes downloading every data file into the cache"},
		{"S3: 24 h order_revenue_minute, first call after a cold start", ms(coldRevenue), "", "", ""},
		{"S3: 24 h order_revenue_minute, p50 warm", ms(revLat[len(revLat)/2]), "<= 200 ms", verdict(revLat[len(revLat)/2] <= 200*time.Millisecond), fmt.Sprintf("%d timed runs after 3 warm-up", runs)},
		{"S3: 24 h revenue per minute via POST /v1/sql, p50 warm", ms(sqlLat[len(sqlLat)/2]), "", "", "same aggregate as SQL over the `orders` view"},
		{"S3: query service restart to ready (/readyz), warm cache", ms(warmStart), "", "", "cached files found on disk and checked (size, Parquet magic), nothing downloaded"},
		{"S3: 24 h order_revenue_minute, first call after a warm restart", ms(warmFirst), "", "", ""},
	}, nil
}
