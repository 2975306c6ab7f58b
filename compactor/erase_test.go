package compactor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/audit"
	"github.com/eventlake/eventlake/lake"
)

// TestEraseLeavesTheAuditLog: an erasure never removes rows from the query
// audit log, even when the table is configured as a raw table and one of
// its columns is marked as naming a person (here the principal, which
// holds the subject's id): the report says it was not searched, and why.
func TestEraseLeavesTheAuditLog(t *testing.T) {
	ctx := context.Background()
	dir, cat := testLake(t)

	// Rows written the way the query service writes them.
	l, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, who := range []string{"u-42", "u-42", "grafana"} {
		if err := l.Append(ctx, audit.Record{Principal: who, Protocol: audit.ProtocolHTTP, Kind: audit.KindSQL,
			Statement: "SELECT * FROM orders WHERE user_id = 'u-42'", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	com := lake.NewCommitter(cat, lake.CommitConfig{Writer: "test", MaxFailures: 3}, lake.CommitHooks{}, nil, nil)
	s, err := audit.NewShipper(l, audit.ShipperConfig{}, audit.ShipperDeps{Catalog: cat, Committer: com})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.LoadTable(ctx, lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	// The misconfiguration that would make erasure search it.
	if _, err := cat.Evolve(ctx, tbl, nil, iceberg.Properties{lake.PropSubjectPrefix + lake.ColAuditPrincipal: "user_id"}); err != nil {
		t.Fatal(err)
	}
	tbl, err = cat.LoadTable(ctx, lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	before := tbl.CurrentSnapshot().SnapshotID

	for _, tables := range [][]Table{
		{{Name: lake.TableAuditLog, Role: RoleRaw}},
		{{Name: lake.TableAuditLog, Role: RoleDLQ}},
		nil, // found in the catalog: only raw tables are
	} {
		// Short ages: were rows erased, the purge would not wait minutes
		// before the check below fails.
		c, err := New(Config{TempDir: filepath.Join(dir, "tmp"), SnapshotMinAge: time.Millisecond, UnsafeShortAges: true},
			Deps{Catalog: cat, Tables: tables})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Erase(ctx, EraseRequest{UserID: "u-42", RequestedBy: "dpo@example.com"})
		if cerr := c.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range rep.Tables {
			if tr.Table == lake.TableAuditLog && (tr.Rows != 0 || tr.NotSearched != NotSearchedAuditLog) {
				t.Fatalf("tables %v: the audit log's report %+v", tables, tr)
			}
		}
		if len(tables) > 0 && (len(rep.Tables) != 1 || rep.Tables[0].Table != lake.TableAuditLog) {
			t.Fatalf("tables %v: report %+v, want the audit log listed as not searched", tables, rep.Tables)
		}
		tbl, err := cat.LoadTable(ctx, lake.TableAuditLog)
		if err != nil {
			t.Fatal(err)
		}
		if got := tbl.CurrentSnapshot().SnapshotID; got != before {
			t.Fatalf("tables %v: the erasure committed snapshot %d to the audit log", tables, got)
		}
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		for _, task := range tasks {
			rows += task.File.Count()
		}
		if rows != 3 {
			t.Fatalf("tables %v: the audit log holds %d rows, want 3", tables, rows)
		}
	}
}
