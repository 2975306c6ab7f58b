package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	th "github.com/eventlake/eventlake/internal/testharness"
)

const returnV1 = `{"type":"object","properties":{
  "return_id":{"type":"string","minLength":1},
  "order_id":{"type":"string"},
  "user_id":{"type":"string","x-eventlake-subject":true},
  "amount":{"type":["number","string"],"x-eventlake-type":"decimal(12,2)","minimum":0}},
  "required":["return_id","amount"]}`

// v2 adds an optional property.
const returnV2 = `{"type":"object","properties":{
  "return_id":{"type":"string","minLength":1},
  "order_id":{"type":"string"},
  "user_id":{"type":"string","x-eventlake-subject":true},
  "amount":{"type":["number","string"],"x-eventlake-type":"decimal(12,2)","minimum":0},
  "channel":{"type":"string","enum":["web","store"]}},
  "required":["return_id","amount"]}`

// v3 retypes amount: refused.
const returnV3 = `{"type":"object","properties":{
  "return_id":{"type":"string","minLength":1},
  "amount":{"type":"boolean"}},
  "required":["return_id","amount"]}`

// TestRegistrySharedAcrossProcesses: the built-in registry lives in the
// catalog's PostgreSQL database, so every process of a deployment shares
// it. A schema registered through the query service's API is used by an
// ingest process that reads the same database (A) and by one pointed at
// the API as an external registry with schema_registry.url (B). While the
// registry is down, B keeps ingesting the types it has loaded and holds
// back (loses nothing, guesses nothing for) an event of a type it does
// not know; after the query service restarts, the registry holds what it
// held, with its compatibility history, and B carries on.
func TestRegistrySharedAcrossProcesses(t *testing.T) {
	l := newLake(t, lakeOpts{postgres: true})
	ctx := context.Background()
	qAddr := fmt.Sprintf("127.0.0.1:%d", th.FreePort(t))
	startQuery := func() *th.Proc {
		env := append(slices.Clone(l.catEnv), "EVENTLAKE_QUERY_REFRESH_INTERVAL=100ms", "EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=200ms")
		return th.Start(t, "query", env, "query", "--data-dir", filepath.Join(l.dir, "data"), "--http", qAddr, "--brokers", l.addr)
	}
	tok := th.CreateToken(t, l.catEnv, "schema-admin", "admin", "--data-dir", filepath.Join(l.dir, "data"), "--create-lake")
	th.SetToken(qAddr, tok)
	q := startQuery()
	api := "http://" + qAddr
	rcl, err := sr.NewClient(sr.URLs(api), sr.BasicAuth("schema-admin", tok))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := rcl.CreateSchema(ctx, "return.requested", sr.Schema{Schema: returnV1, Type: sr.TypeJSON})
	if err != nil {
		t.Fatalf("register v1: %v", err)
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(l.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	if _, err := kadm.NewClient(kcl).CreateTopics(ctx, 2, 1, nil, "returns.a", "returns.b"); err != nil {
		t.Fatal(err)
	}
	common := []string{"EVENTLAKE_SCHEMA_REGISTRY_POLL_INTERVAL=200ms", "EVENTLAKE_INGEST_TOPIC_REFRESH=500ms"}
	l.startIngest("a", false, append(common, "EVENTLAKE_INGEST_GROUP=returns-a", `EVENTLAKE_INGEST_TOPIC_PATTERN=^returns\.a$`)...)
	b := l.startIngest("b", false, append(common, "EVENTLAKE_INGEST_GROUP=returns-b", `EVENTLAKE_INGEST_TOPIC_PATTERN=^returns\.b$`,
		"EVENTLAKE_SCHEMA_REGISTRY_URL="+api, "EVENTLAKE_SCHEMA_REGISTRY_BEARER_TOKEN="+tok)...)

	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	produced := map[string]int{}
	produce := func(topic, typ string, from, to int, extra, meta string) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			v := fmt.Sprintf(`{"event_id":"%s-%d","source":"returns","type":"%s","timestamp":"%s","payload":`+
				`{"return_id":"r%d","order_id":"o-%d","user_id":"u%d","amount":"%d.25"%s}`, topic, i, typ, ts, i, i, i%7, i, extra)
			if meta != "" {
				v += `,"metadata":` + meta
			}
			recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "o-%d", i), Value: []byte(v + "}")})
		}
		if err := kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		produced[topic] += to - from
	}
	sqlIs := func(what, query, want string) {
		t.Helper()
		th.Eventually(t, 60*time.Second, what, func() (bool, string) {
			r, code := th.TrySQL(t, api, query)
			if code != 200 {
				return false, fmt.Sprintf("HTTP %d %s", code, r.Error)
			}
			return fmt.Sprint(r.Rows) == want, fmt.Sprint(r.Rows)
		})
	}

	produce("returns.a", "return.requested", 0, 20, "", "")
	produce("returns.b", "return.requested", 20, 40, "", "")
	sqlIs("v1 events of both ingest processes typed", "SELECT count(*), count(DISTINCT event_id), sum(amount) FROM return_requested",
		"[[40 40 790.00]]")
	r := th.SQL(t, api, "SELECT amount FROM returns_b WHERE return_id = 'r21'")
	if fmt.Sprint(r.Rows) != "[[21.25]]" || r.Types[0] != "DECIMAL(12,2)" {
		t.Fatalf("B typed with the schema read through schema_registry.url: %v %v", r.Rows, r.Types)
	}

	// v2, registered through the API, reaches A through the database and B
	// through the API.
	v2, err := rcl.CreateSchema(ctx, "return.requested", sr.Schema{Schema: returnV2, Type: sr.TypeJSON})
	if err != nil || v2.Version != 2 {
		t.Fatalf("register v2: %+v %v", v2, err)
	}
	produce("returns.a", "return.requested", 40, 50, `,"channel":"web"`, `{"schema_version":2}`)
	produce("returns.b", "return.requested", 50, 60, `,"channel":"store"`, `{"schema_version":2}`)
	sqlIs("v2 events of both processes with the new column", "SELECT channel, count(*) FROM return_requested GROUP BY ALL ORDER BY ALL",
		"[[store 10] [web 10] [<nil> 40]]")

	// The registry goes down with the query service.
	if err := q.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop the query service: %v", err)
	}
	cat := l.open()
	produce("returns.b", "return.requested", 60, 70, `,"channel":"web"`, "")
	th.Eventually(t, 60*time.Second, "B to ingest a loaded type with the registry down", func() (bool, string) {
		n := storedOffsets(t, cat, "returns_b").Total()
		return n == int64(produced["returns.b"]), fmt.Sprintf("returns_b covers %d of %d records", n, produced["returns.b"])
	})
	// A type B has not loaded: B cannot tell "registered a moment ago"
	// from "never registered" and must not decide.
	produce("returns.b", "exchange.requested", 70, 71, "", "")
	th.Eventually(t, 30*time.Second, "B to hold back the undecidable event", func() (bool, string) {
		for _, line := range strings.Split(b.Log(), "\n") {
			if strings.Contains(line, "ingest paused") && strings.Contains(line, "schema registry unavailable") && strings.Contains(line, "exchange.requested") {
				return true, ""
			}
		}
		return false, "B has not paused on it"
	})
	if n := storedOffsets(t, cat, "returns_b").Total(); n != int64(produced["returns.b"])-1 {
		t.Fatalf("returns_b covers %d records with the registry down, want %d: the undecidable event was decided", n, produced["returns.b"]-1)
	}

	// Back up: the registry kept its versions, ids and history.
	q = startQuery()
	got, err := rcl.SchemaByVersion(ctx, "return.requested", 2)
	if err != nil || got.ID != v2.ID {
		t.Fatalf("v2 after the restart: %+v %v, want id %d", got, err, v2.ID)
	}
	if got, err := rcl.SchemaByID(ctx, v1.ID); err != nil || !strings.Contains(got.Schema, "return_id") {
		t.Fatalf("v1 by id after the restart: %+v %v", got, err)
	}
	_, err = rcl.CreateSchema(ctx, "return.requested", sr.Schema{Schema: returnV3, Type: sr.TypeJSON})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 {
		t.Fatalf("an incompatible v3 after the restart: %v, want 409", err)
	}
	th.Eventually(t, 60*time.Second, "B to decide the held-back event once the registry answers", func() (bool, string) {
		n := storedOffsets(t, cat, "returns_b").Total()
		return n == int64(produced["returns.b"]), fmt.Sprintf("returns_b covers %d of %d records", n, produced["returns.b"])
	})
	sqlIs("every event once", "SELECT type, count(*), count(DISTINCT event_id) FROM events GROUP BY ALL ORDER BY ALL",
		"[[exchange.requested 1 1] [return.requested 70 70]]")
	if r := th.SQL(t, api, "SELECT count(*) FROM dlq"); fmt.Sprint(r.Rows) != "[[0]]" {
		t.Fatalf("dead letters: %v, want none", r.Rows)
	}
}
