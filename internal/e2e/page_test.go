package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// chromiumPath is Debian's chromium; EVENTLAKE_TEST_CHROMIUM names another.
func chromiumPath(t *testing.T) string {
	p := os.Getenv("EVENTLAKE_TEST_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Skipf("no chromium at %s (set EVENTLAKE_TEST_CHROMIUM): %v", p, err)
	}
	return p
}

// browser starts a headless chromium with a fresh profile and collects
// every console error, uncaught exception and browser log error of its
// tab.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	var (
		mu   sync.Mutex
		errs []string
	)
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				msg = "log " + string(ev.Entry.Source) + ": " + ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if msg != "" {
			mu.Lock()
			errs = append(errs, msg)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// pageFigure is the page's current-minute tile.
type pageFigure struct {
	Minute  string `json:"minute"`
	Revenue string `json:"revenue"`
	Orders  string `json:"orders"`
}

func readFigure(ctx context.Context) (pageFigure, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[pageFigure](`(() => { const r = document.getElementById("cur-revenue");
		return {minute: r.dataset.minute || "", revenue: r.dataset.revenue || "", orders: document.getElementById("cur-orders").textContent}; })()`))
}

// TestLivePage: a browser logs in with the dev admin token (which then
// leaves the address bar; the session cookie is HttpOnly, SameSite=Strict
// and not the token), the page loads without a console error, its chart
// draws the demo's minutes as the API has them, and one order published
// into the current minute moves the page's figure for that minute.
func TestLivePage(t *testing.T) {
	ctx, consoleErrors := browser(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", []string{"EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s", "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s"},
		"dev", "--demo-rate", "20", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api, broker := "http://"+dev.Ready["http"], dev.Ready["kafka"]
	token := th.Token(api)
	if token == "" {
		t.Fatal("dev registered no admin token")
	}
	// The log names the page and where its token is, never the token.
	wantLine := "page=\"" + api + "/?token=<contents of " + dev.Ready["admin_token_file"] + ">\""
	if log := dev.Log(); !strings.Contains(log, wantLine) || strings.Contains(log, token) {
		t.Fatalf("dev log: want the line %s and not the token; got:\n%s", wantLine, log)
	}

	// Thirty minutes of the demo shop's history, so the chart has a past.
	start := time.Now().UTC().Truncate(time.Minute).Add(-29 * time.Minute)
	if out, err := runBinary(t, "produce", "--brokers", broker, "--rate", "0", "--count", "3000", "--seed", "7",
		"--start", start.Format(time.RFC3339), "--step", "560ms", "--late-fraction", "0"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	// apiMinutes counts the minutes with orders the API has in the
	// page's window: the last 30 minutes, the current one included.
	apiMinutes := func() (int, error) {
		now := time.Now().UTC().Truncate(time.Minute)
		u := fmt.Sprintf("%s/v1/metrics/order_revenue_minute?from=%s&to=%s", api,
			now.Add(-29*time.Minute).Format(time.RFC3339), now.Add(time.Minute).Format(time.RFC3339))
		var r struct {
			Rows []struct{ Minute string } `json:"rows"`
		}
		if code := th.GetJSON(t, u, &r); code != http.StatusOK {
			return 0, fmt.Errorf("GET %s: HTTP %d", u, code)
		}
		return len(r.Rows), nil
	}
	th.Eventually(t, 60*time.Second, "the history in the hot tier", func() (bool, string) {
		n, err := apiMinutes()
		return err == nil && n >= 28, fmt.Sprintf("%d minutes, %v", n, err)
	})

	// Without a session: a login hint, not a JSON 401.
	resp, err := http.Get(api + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / without a session: HTTP %d %s, want 401 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1440, 900),
		chromedp.Navigate(api+"/?token="+token),
		chromedp.WaitVisible("#chart"),
	); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "token") || loc != api+"/" {
		t.Fatalf("after login the address is %q; want %s/ without the token", loc, api)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "eventlake_session" {
			session = c
		}
	}
	switch {
	case session == nil:
		t.Fatalf("no session cookie; cookies: %v", cookies.Cookies)
	case !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict:
		t.Fatalf("session cookie HttpOnly=%v SameSite=%q; want HttpOnly and Strict", session.HTTPOnly, session.SameSite)
	case strings.Contains(session.Value, token) || len(session.Value) < 32:
		t.Fatalf("the session cookie %q is not an opaque id", session.Value)
	}
	// The cookie reads; it does not write: POST /v1/sql wants the header.
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/sql", strings.NewReader(`{"sql":"SELECT 1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /v1/sql with only the session cookie: HTTP %d, want 401", resp.StatusCode)
	}

	// The chart draws one bar and one point per minute with orders, as
	// many as the API has in the window, with a visible height.
	th.Eventually(t, 30*time.Second, "the chart drawing the demo's minutes", func() (bool, string) {
		want, err := apiMinutes()
		if err != nil {
			return false, err.Error()
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[
			[...document.querySelectorAll("#chart rect.bar")].filter(b => +b.getAttribute("height") > 0).length,
			document.querySelectorAll("#chart circle.pt").length,
			(document.getElementById("orders-line")?.getAttribute("d") || "").split(" L ").length]`))
		if err != nil {
			return false, err.Error()
		}
		// The page's window ends at the current minute; the API's too.
		return got[0] >= 28 && got[0] == want && got[1] == got[0] && got[2] == got[0],
			fmt.Sprintf("bars, points, line points %v; API minutes %d", got, want)
	})
	// GET /v1/status reached the page: the orders table with a snapshot
	// and the rows the lake holds, and every table of the status.
	th.Eventually(t, 30*time.Second, "the tables panel", func() (bool, string) {
		_, st := statusJSON(t, api)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
			const rows = [...document.querySelectorAll("#tables tbody tr")];
			const o = rows.find(r => r.cells[0].textContent === "orders_raw");
			return [String(rows.length), o ? o.cells[2].textContent : "", o ? o.cells[4].textContent : ""]; })()`))
		if err != nil {
			return false, err.Error()
		}
		rows, _ := strconv.Atoi(strings.ReplaceAll(got[2], ",", ""))
		return got[0] == strconv.Itoa(len(st["tables"].([]any))) && strings.HasPrefix(got[1], "…") && rows > 0,
			fmt.Sprintf("page: %d tables (status has %d), orders_raw snapshot %q rows %q", len(got), len(st["tables"].([]any)), got[1], got[2])
	})

	// The screenshot (before the big order below dwarfs every other
	// minute): a test artifact, and docs/live-page.png when
	// EVENTLAKE_TEST_SCREENSHOT names that file.
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "live-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if p := os.Getenv("EVENTLAKE_TEST_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// One order into the current minute: far larger than the demo's
	// orders (at most 799.96 each, 20 events/s), so only it can explain
	// the jump. Not in the last seconds of a minute, so that the page's
	// current minute is still the order's.
	if left := time.Minute - time.Duration(time.Now().UnixNano()%int64(time.Minute)); left < 15*time.Second {
		time.Sleep(left + time.Second)
	}
	var before pageFigure
	th.Eventually(t, 10*time.Second, "the page on the current minute", func() (bool, string) {
		var err error
		before, err = readFigure(ctx)
		return err == nil && before.Minute == time.Now().UTC().Truncate(time.Minute).Format(time.RFC3339), fmt.Sprintf("%+v %v", before, err)
	})
	ts := time.Now().UTC()
	minute := ts.Truncate(time.Minute).Format(time.RFC3339)
	if before.Minute != minute {
		t.Fatalf("the page's current minute is %q, want %q", before.Minute, minute)
	}
	const big = 10_000_000.00
	line := fmt.Sprintf(`{"event_id":"page-big-1","source":"page-test","type":"order.created","timestamp":%q,"payload":{"order_id":"o-big","user_id":"u-big","product_id":"p-big","quantity":1,"amount":%.2f}}`,
		ts.Format(time.RFC3339Nano), big)
	file := filepath.Join(dir, "order.ndjson")
	if err := os.WriteFile(file, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if out, err := runBinary(t, "produce", "--brokers", broker, "--file", file); err != nil {
		t.Fatalf("produce the order: %v\n%s", err, out)
	}
	published := time.Now()
	beforeRev, _ := strconv.ParseFloat(before.Revenue, 64)
	var moved time.Duration
	th.Eventually(t, 30*time.Second, "the page's figure of the current minute moving by the order", func() (bool, string) {
		f, err := readFigure(ctx)
		if err != nil {
			return false, err.Error()
		}
		rev, _ := strconv.ParseFloat(f.Revenue, 64)
		if f.Minute == minute && rev >= beforeRev+big && rev < beforeRev+big+1_000_000 {
			moved = time.Since(published)
			return true, ""
		}
		return false, fmt.Sprintf("%+v (before %+v)", f, before)
	})
	t.Logf("the page showed the order %v after `eventlake produce` returned (%v after it started)",
		moved.Round(10*time.Millisecond), (moved + published.Sub(sent)).Round(10*time.Millisecond))

	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestLivePageLoginRefused: a token that is not live leads to the login
// hint saying so, and sets no cookie.
func TestLivePageLoginRefused(t *testing.T) {
	ctx, _ := browser(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", nil, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api := "http://" + dev.Ready["http"]
	if err := chromedp.Do(ctx, chromedp.Navigate(api+"/?token=elk_not-a-token"), chromedp.WaitVisible(".login-card")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "was not accepted") {
		t.Fatalf("login hint after a bad token:\n%s", text)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.Contains(loc, "elk_not-a-token") {
		t.Fatalf("the refused token stayed in the address: %s", loc)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies.Cookies) != 0 {
		t.Fatalf("cookies after a refused login: %v", cookies.Cookies)
	}
}

// statusJSON reads GET /v1/status as the raw JSON and decoded.
func statusJSON(t *testing.T, api string) (string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api+"/v1/status", nil)
	th.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/status: HTTP %d %v", resp.StatusCode, err)
	}
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return string(raw), v
}
