package testharness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// daemon is an external server process the harness started.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error
}

func startDaemon(t testing.TB, name, logPath string, cmd *exec.Cmd) (*daemon, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	lb := &lockedBuffer{f: f}
	cmd.Stdout, cmd.Stderr = lb, lb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, log: lb, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		f.Close()
		close(d.done)
	}()
	return d, nil
}

// stop sends sig to the process group (runuser does not forward every
// signal to its child) and waits up to wait for the exit, then SIGKILLs
// the group.
func (d *daemon) stop(sig syscall.Signal, wait time.Duration) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, sig)
	select {
	case <-d.done:
	case <-time.After(wait):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// ---------------------------------------------------------------- S3

// S3Server is a real S3-compatible server (versitygw over a local
// directory) on a loopback port, with one bucket.
type S3Server struct {
	t         testing.TB
	bin       string
	Dir       string // root directory; each bucket is a subdirectory
	Port      int
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Bucket    string
	d         *daemon
	logPath   string
}

// Versitygw returns the path of the versitygw binary, looked up in PATH
// and in $(go env GOPATH)/bin. .ci/run installs it with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`.
func Versitygw(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatal("versitygw is required: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (.ci/run installs it)")
	return ""
}

func goBinDirs() []string {
	var dirs []string
	if gb := os.Getenv("GOBIN"); gb != "" {
		dirs = append(dirs, gb)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return dirs
}

// StartS3 starts versitygw on a free loopback port over a fresh
// directory, with random root credentials and the bucket "lake" created.
// It is stopped at cleanup.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	dir := t.TempDir()
	s := &S3Server{
		t: t, bin: Versitygw(t), Dir: filepath.Join(dir, "root"), Port: FreePort(t),
		AccessKey: "ELTEST" + strings.ToUpper(randomHex(6)), SecretKey: randomHex(20), Bucket: "lake",
		logPath: filepath.Join(dir, "versitygw.log"),
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	if err := os.MkdirAll(filepath.Join(s.Dir, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("--- versitygw log (last 4 KiB) ---\n%s", tail(s.d.log.String(), 4<<10))
		}
	})
	return s
}

// Start (re)starts the server on its port and directory.
func (s *S3Server) Start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--port", "127.0.0.1:"+strconv.Itoa(s.Port), "--quiet", "posix", s.Dir)
	cmd.Env = os.Environ()
	d, err := startDaemon(s.t, "versitygw", s.logPath, cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	s.d = d
	if err := waitTCP("127.0.0.1:"+strconv.Itoa(s.Port), 15*time.Second); err != nil {
		s.Stop()
		s.t.Fatalf("versitygw: %v\n%s", err, s.d.log.String())
	}
}

// Stop stops the server (SIGTERM, then SIGKILL).
func (s *S3Server) Stop() {
	if s.d != nil {
		s.d.stop(syscall.SIGTERM, 5*time.Second)
	}
}

// Warehouse is the s3:// URI of a warehouse under the bucket.
func (s *S3Server) Warehouse(prefix string) string {
	return "s3://" + s.Bucket + "/" + strings.Trim(prefix, "/")
}

// Env are the EVENTLAKE_ settings that point a catalog's warehouse at
// this server, with static credentials.
func (s *S3Server) Env(prefix string) []string {
	return []string{
		"EVENTLAKE_CATALOG_WAREHOUSE=" + s.Warehouse(prefix),
		"EVENTLAKE_CATALOG_S3_ENDPOINT=" + s.Endpoint,
		"EVENTLAKE_CATALOG_S3_ACCESS_KEY_ID=" + s.AccessKey,
		"EVENTLAKE_CATALOG_S3_SECRET_ACCESS_KEY=" + s.SecretKey,
	}
}

// ---------------------------------------------------------- Postgres

// Postgres is a throwaway PostgreSQL cluster on a loopback port, with
// password authentication (so that tests can check the password never
// reaches a log).
type Postgres struct {
	t        testing.TB
	binDir   string
	Dir      string
	Port     int
	User     string
	Password string
	DB       string
	d        *daemon
	logPath  string
	asUser   string // run as this OS user (postgres refuses root)
}

// PostgresBinDir finds initdb and postgres: PATH, then
// /usr/lib/postgresql/<newest>/bin (Debian's layout; the CI image has
// PostgreSQL 15 there).
func PostgresBinDir(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	if len(matches) > 0 {
		return filepath.Dir(matches[0])
	}
	t.Fatal("PostgreSQL server binaries (initdb, postgres) are required: apt-get install postgresql (.ci/run installs it)")
	return ""
}

// StartPostgres initializes a cluster in a fresh directory and starts it
// on a free loopback port. It is stopped and removed at cleanup.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := PostgresBinDir(t)
	// Not t.TempDir(): its parents are private to the test's user, and
	// PostgreSQL runs as the postgres user when the tests run as root.
	dir, err := os.MkdirTemp("", "eventlake-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Postgres{t: t, binDir: bin, Dir: filepath.Join(dir, "data"), Port: FreePort(t),
		User: "eventlake", Password: "pw-" + randomHex(12), DB: "postgres", logPath: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		p.asUser = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres OS user to run PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.chown(pwfile)
	out, err := p.command(filepath.Join(bin, "initdb"), "-D", p.Dir, "-U", p.User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- postgres log (last 4 KiB) ---\n%s", tail(p.d.log.String(), 4<<10))
		}
	})
	return p
}

func (p *Postgres) chown(path string) {
	if p.asUser == "" {
		return
	}
	u, err := user.Lookup(p.asUser)
	if err != nil {
		return
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	_ = os.Chown(path, uid, gid)
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	if p.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", p.asUser, "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// Start (re)starts the server on its port and data directory and waits
// until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	cmd := p.command(filepath.Join(p.binDir, "postgres"), "-D", p.Dir, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+filepath.Dir(p.Dir),
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	d, err := startDaemon(p.t, "postgres", p.logPath, cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	p.d = d
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := waitTCP("127.0.0.1:"+strconv.Itoa(p.Port), time.Second); err == nil {
			out, err := exec.Command(filepath.Join(p.binDir, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", p.User).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("postgres not ready: %s\n%s", out, p.d.log.String())
			}
		}
		if p.d.exited() || time.Now().After(deadline) {
			p.t.Fatalf("postgres did not start: %v\n%s", p.d.err, p.d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: open sessions are
// terminated, as in a restart by an operator or a failover).
func (p *Postgres) Stop() {
	if p.d != nil {
		p.d.stop(syscall.SIGINT, 20*time.Second)
	}
}

// Restart stops the server and starts it again after down.
func (p *Postgres) Restart(down time.Duration) {
	p.Stop()
	time.Sleep(down)
	p.Start()
}

// URI is the connection URI of the cluster's database, password included.
func (p *Postgres) URI() string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", p.User, p.Password, p.Port, p.DB)
}

// URIWithDB is the connection URI of another database of the cluster,
// created if missing.
func (p *Postgres) URIWithDB(db string) string {
	p.t.Helper()
	psql := filepath.Join(p.binDir, "psql")
	q := exec.Command(psql, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", p.User, "-d", p.DB,
		"-tAc", "SELECT 1 FROM pg_database WHERE datname = '"+db+"'")
	q.Env = append(os.Environ(), "PGPASSWORD="+p.Password)
	out, err := q.CombinedOutput()
	if err != nil {
		p.t.Fatalf("psql: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "1" {
		cmd := exec.Command(psql, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", p.User, "-d", p.DB, "-c", "CREATE DATABASE "+db)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+p.Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			p.t.Fatalf("create database %s: %v: %s", db, err, out)
		}
	}
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", p.User, p.Password, p.Port, db)
}

// Env are the EVENTLAKE_ settings of a Postgres catalog in database db.
func (p *Postgres) Env(db string) []string {
	return []string{"EVENTLAKE_CATALOG_TYPE=postgres", "EVENTLAKE_CATALOG_URI=" + p.URIWithDB(db)}
}

// RandomID is a short random lowercase identifier for names that must not
// collide between tests (databases, namespaces, prefixes).
func RandomID() string { return randomHex(5) }
