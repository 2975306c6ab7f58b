package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// Sizes of TestHotTierPause. pauseMaxHot is the smallest
// streamer.max_hot_events the configuration accepts; pausePollRecords is
// the most records one poll of the hot tier takes (streamer.pollRecords),
// the fetch batch by which it may pass max_hot_events before it pauses.
const (
	pauseMaxHot      = 1000
	pausePollRecords = 20_000
)

// The hot tier's log lines at a pause and a resume (streamer/consume.go),
// with the records of the paused topics read by then (read_records).
var (
	pauseLine  = regexp.MustCompile(`msg="hot tier full: pausing fetching until read models are committed".* hot_events=(\d+) polled_events=(\d+) read_records=(\d+) `)
	resumeLine = regexp.MustCompile(`msg="hot tier drained: fetching resumed".* hot_events=(\d+) read_records=(\d+)`)
)

// TestHotTierPause: with streamer.max_hot_events at its minimum and the
// read model committed only every few seconds, a producer sends a dozen
// times as many events as the hot tier may hold. The hot tier must pause
// fetching (counted in eventlake_streamer_pauses_total), must resume once
// the commits drain it, must never hold more than max_hot_events plus what
// one poll adds, and the read model must stay exact through it all: every
// answer equals the ground truth below the offsets it names, and once
// everything is committed the model (through the API and SQL over its
// table) holds every order once.
func TestHotTierPause(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "eventlake.yaml")
	// One model: an order counts once toward max_hot_events (an inventory
	// update, held for inventory_health, counts once too).
	if err := os.WriteFile(cfgFile, []byte("read_models:\n  models:\n    - name: order_revenue_minute\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := th.Start(t, "dev", []string{
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=1s",
		"EVENTLAKE_STREAMER_MAX_HOT_EVENTS=" + strconv.Itoa(pauseMaxHot),
		// The producer sends 2000 events a second: between two commits
		// the hot tier reads far more than max_hot_events.
		"EVENTLAKE_STREAMER_COMMIT_INTERVAL=3s",
	}, "dev", "--no-demo", "--config", cfgFile, "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]
	waitHotTier(t, api)

	const total = 12000 // with inventory updates (20%), duplicates and late orders
	prod := th.StartNoWait(t, "produce", nil, "produce", "--brokers", broker, "--rate", "2000", "--count", strconv.Itoa(total),
		"--seed", "31", "--start", "2026-11-27T10:00:00Z", "--step", "10ms", "--duplicate-fraction", "0.02", "--late-fraction", "0.05")

	// mustValue is a gauge or plain counter the streamer registers at its
	// start: absent is a fault, never 0.
	mustValue := func(m metricsText, series string) float64 {
		t.Helper()
		v, ok := m.samples[series]
		if !ok {
			t.Fatalf("/metrics has no %s:\n%s", series, m.grep("eventlake_streamer_"))
		}
		return v
	}
	var (
		answers     []revenueAnswer
		tl          = newTally("order_revenue_minute")
		url         = api + "/v1/models/order_revenue_minute?from=2026-11-27T09:00:00Z&to=2026-11-27T12:00:00Z&every=all"
		maxSampled  float64 // the largest eventlake_streamer_hot_events seen
		pausedSeen  int     // samples with eventlake_streamer_fetch_paused 1
		samples     int
		hot, paused float64 // the last sample's
	)
	// poll asks the model, then scrapes /metrics: a scrape after an answer
	// that read the whole log sees every event of it counted (the hot
	// tier sets the gauges under the lock it advances its offsets under).
	poll := func() (good bool) {
		var a revenueAnswer
		if good = tl.note(askJSON(t, http.MethodGet, url, nil, &a), a.Code, a.Error); good {
			answers = append(answers, a)
		}
		m := scrape(t, api)
		hot, paused = mustValue(m, "eventlake_streamer_hot_events"), mustValue(m, "eventlake_streamer_fetch_paused")
		samples++
		maxSampled = max(maxSampled, hot)
		if paused == 1 {
			pausedSeen++
		}
		return good
	}
	pollStart, prodDone, _ := pollWhile(t, prod, func() { poll() }, 25*time.Millisecond, 0)

	// Everything produced is in the log now: poll until the hot tier has
	// read all of it, committed it (nothing held) and is not paused.
	ends := endOffsets(t, broker, "orders.created")
	caughtUp := func(a revenueAnswer) bool {
		for p, o := range ends {
			if a.Watermark["orders.created"][p] != o {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if poll() && caughtUp(answers[len(answers)-1]) && hot == 0 && paused == 0 {
			break
		}
		if time.Now().After(deadline) {
			last := "none"
			if len(answers) > 0 {
				last = fmt.Sprint(answers[len(answers)-1].Watermark)
			}
			t.Fatalf("2 min after the producer: the hot tier holds %v events, fetch paused %v, last answer read %s; the log ends at %v",
				hot, paused, last, ends)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("the producer ran %v; the hot tier read and committed the log %v later",
		prodDone.Sub(pollStart).Round(time.Millisecond), time.Since(prodDone).Round(time.Millisecond))
	tl.check(t, pollStart, prodDone, time.Now())

	// The pause happened, and each pause was followed by a resume. (A
	// pause is logged just after it is counted: wait for its line.)
	counted := mustValue(scrape(t, api), "eventlake_streamer_pauses_total")
	var log string
	var pauses, resumes [][]string
	th.Eventually(t, 10*time.Second, "a pause and a resume line in the log for each pause counted", func() (bool, string) {
		log = dev.Log()
		pauses, resumes = pauseLine.FindAllStringSubmatch(log, -1), resumeLine.FindAllStringSubmatch(log, -1)
		return float64(len(pauses)) == counted && len(resumes) == len(pauses),
			fmt.Sprintf("eventlake_streamer_pauses_total %v, %d pause and %d resume lines", counted, len(pauses), len(resumes))
	})
	t.Logf("%d pauses, %d resumes; %d of %d samples saw fetching paused; largest hot_events sampled %v",
		len(pauses), len(resumes), pausedSeen, samples, maxSampled)
	if len(pauses) == 0 {
		t.Fatalf("the hot tier never paused although %d events were produced against max_hot_events %d", total, pauseMaxHot)
	}
	for i, r := range resumes {
		if n, _ := strconv.Atoi(r[1]); n >= pauseMaxHot/2 {
			t.Fatalf("resume %d with %d events held; it must wait until fewer than half of max_hot_events (%d)", i, n, pauseMaxHot/2)
		}
	}

	// Bounded: each pause came at the first poll that reached
	// max_hot_events, a poll adds at most one fetch batch, and nothing
	// was read while paused: each resume reports the records of the
	// paused topics its pause did. (Not the samples of hot_events against
	// the counts at the pauses: a sample can catch a poll midway, above
	// the count it ends at when a commit drains the hot tier during it.)
	for i, p := range pauses {
		held, _ := strconv.Atoi(p[1])
		polled, _ := strconv.Atoi(p[2])
		t.Logf("pause %d: %d events held, %d of them from the poll that filled it", i, held, polled)
		switch {
		case held < pauseMaxHot:
			t.Fatalf("pause %d with %d events held, below max_hot_events %d", i, held, pauseMaxHot)
		case held-polled >= pauseMaxHot:
			t.Fatalf("pause %d: %d events held before the poll that paused; an earlier poll should have paused at %d", i, held-polled, pauseMaxHot)
		case polled > pausePollRecords:
			t.Fatalf("pause %d: one poll added %d events, more than a poll takes (%d)", i, polled, pausePollRecords)
		}
		if read, readAtResume := p[3], resumes[i][2]; readAtResume != read {
			t.Fatalf("pause %d at %s records of the paused topics read, its resume at %s: it read on while paused", i, read, readAtResume)
		}
	}

	// Exactly once: every answer equals the orders below its offsets,
	// and the last one (everything read, everything committed) all of
	// them.
	var orders []logEvent
	for _, e := range readLog(t, broker, 100_000, "orders.created") {
		if e.isOrder {
			orders = append(orders, e)
		}
	}
	// truthBelow is the orders below offsets wm; all of them with all set.
	truthBelow := func(wm map[string]int64, all bool) (n, cents int64) {
		for _, e := range orders {
			if all || below(e, wm) {
				n++
				cents += e.cents
			}
		}
		return n, cents
	}
	answerTotals := func(a revenueAnswer) (int64, string) {
		switch len(a.Rows) {
		case 0:
			return 0, decimal2(0)
		case 1:
			return a.Rows[0].OrderCount, a.Rows[0].Revenue
		}
		t.Fatalf("every=all answered %d rows", len(a.Rows))
		return 0, ""
	}
	for i, a := range answers {
		n, cents := truthBelow(a.Watermark["orders.created"], false)
		gotN, gotRev := answerTotals(a)
		if gotN != n || gotRev != decimal2(cents) {
			t.Fatalf("answer %d over %v: %d orders, revenue %s; the ground truth below it is %d orders, %s",
				i, a.Watermark["orders.created"], gotN, gotRev, n, decimal2(cents))
		}
	}
	// The answers saw the hot tier read on between the pauses, not one
	// state before and after them.
	if n := distinct(answers, func(a revenueAnswer) any { return a.Watermark }); n <= len(pauses) {
		t.Fatalf("the answers covered %d distinct offsets across %d pauses; want more than one per pause", n, len(pauses))
	}
	wantN, wantCents := truthBelow(nil, true)
	if wantN < total/2 {
		t.Fatalf("the log holds %d orders of %d events produced", wantN, total)
	}
	gotN, gotRev := answerTotals(answers[len(answers)-1])
	if gotN != wantN || gotRev != decimal2(wantCents) {
		t.Fatalf("final answer: %d orders, revenue %s; the log holds %d orders, %s", gotN, gotRev, wantN, decimal2(wantCents))
	}
	// The table the commits built through the pauses holds each order
	// once: the first SQL answer over all of the log's offsets (the query
	// service follows the commits) is checked.
	var r th.SQLResult
	th.Eventually(t, 30*time.Second, "SQL over order_revenue_minute covers the log", func() (bool, string) {
		var status int
		r, status = th.TrySQL(t, api, "SELECT sum(order_count), sum(revenue) FROM order_revenue_minute")
		if status != http.StatusOK || len(r.Rows) != 1 {
			t.Fatalf("SQL over order_revenue_minute: HTTP %d, %d rows: %s", status, len(r.Rows), r.Error)
		}
		off := offsetsOf(t, r.Offsets["order_revenue_minute"], "orders.created")
		return fmt.Sprint(off) == fmt.Sprint(ends), fmt.Sprintf("offsets %v, the log ends at %v", off, ends)
	})
	if got, want := fmt.Sprint(r.Rows[0][0], " ", r.Rows[0][1]), fmt.Sprint(wantN, " ", decimal2(wantCents)); got != want {
		t.Fatalf("order_revenue_minute's table sums to %s (orders, revenue); the log holds %s", got, want)
	}
	t.Logf("checked %d answers against %d orders (%d events produced)", len(answers), wantN, total)
	if strings.Contains(log, "level=ERROR") {
		t.Fatalf("the process logged errors:\n%s", grepLines(log, "level=ERROR"))
	}
}

// endOffsets are the next offsets of a topic's partitions, by partition
// as the answers' watermarks name them.
func endOffsets(t *testing.T, broker, topic string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[string]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[strconv.Itoa(int(o.Partition))] = o.Offset
	})
	if len(out) == 0 {
		t.Fatalf("%s has no partitions", topic)
	}
	return out
}
