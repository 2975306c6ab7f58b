package query

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/lake"
)

// StatusResponse is the answer of GET /v1/status: the one place for the
// facts the live page and `eventlake status` show. Lake facts come from
// the generation in service; ingest figures (rates, lag, freshness, dead
// letters) from the process's own metrics, null where this process does
// not have them (no ingest here, or a metric this build lacks). 64-bit
// ids are strings: JavaScript numbers lose their last digits.
type StatusResponse struct {
	// Time is the server's clock, RFC 3339 UTC.
	Time string `json:"time"`
	// Generation counts the view generations published (0: the lake has
	// not been read yet).
	Generation   uint64 `json:"generation"`
	LastRefresh  string `json:"last_refresh,omitempty"`
	RefreshError string `json:"refresh_error,omitempty"`
	// WindowSeconds is how far back the rates and freshness quantiles
	// look (0: no earlier sample yet, the rates are null).
	WindowSeconds float64        `json:"window_seconds"`
	Ingest        IngestStatus   `json:"ingest"`
	Tables        []TableStatus  `json:"tables"`
	Topics        []TopicStatus  `json:"topics"`
	DLQ           DLQStatus      `json:"dlq"`
	ReadModels    []ModelStatus  `json:"read_models"`
	Readiness     *health.Report `json:"readiness"`
}

// IngestStatus sums the topics.
type IngestStatus struct {
	RecordsPerSecond *float64 `json:"records_per_second"`
	// LagRecords is the records not yet committed to the lake, over all
	// topics; LagSeconds the age of the oldest of them.
	LagRecords *float64 `json:"lag_records"`
	LagSeconds *float64 `json:"lag_seconds"`
}

// TableStatus is one table of the lake as served.
type TableStatus struct {
	Name string `json:"name"`
	// Kind is raw, dlq, read_model or audit.
	Kind  string `json:"kind"`
	Topic string `json:"topic,omitempty"`
	// SnapshotID is null while the table has no snapshot.
	SnapshotID *string `json:"snapshot_id"`
	DataFiles  int     `json:"data_files"`
	// Rows are the records of the data files (rows that delete files
	// remove are still counted).
	Rows       int64   `json:"rows"`
	LastCommit *string `json:"last_commit"`
	// LastCommitAgeSeconds is the time since LastCommit.
	LastCommitAgeSeconds *float64 `json:"last_commit_age_seconds"`
	// RowsPerSecond are the rows ingest committed, over the window.
	RowsPerSecond *float64 `json:"rows_per_second"`
	// Freshness is event time to lake commit, over the window.
	Freshness *Quantiles `json:"freshness_seconds"`
	// Refused says why the table is not served correctly.
	Refused string `json:"refused,omitempty"`
}

// Quantiles of a duration, in seconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
}

// TopicStatus is ingest's progress on one topic.
type TopicStatus struct {
	Topic            string   `json:"topic"`
	RecordsPerSecond *float64 `json:"records_per_second"`
	LagRecords       *float64 `json:"lag_records"`
	LagSeconds       *float64 `json:"lag_seconds"`
}

// DLQStatus counts the dead letters ingest committed since the process
// started, by reason (reasons without any are left out); Total and
// ByReason are null without ingest in this process.
type DLQStatus struct {
	Table    string             `json:"table"`
	Total    *float64           `json:"total"`
	ByReason map[string]float64 `json:"by_reason"`
}

// ModelStatus is the state of one read model.
type ModelStatus struct {
	Name string `json:"name"`
	// State is serving (a snapshot is in service), empty (no commit yet)
	// or refused (Reason says why).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// LastCommit is the snapshot's time in the lake.
	LastCommit *string `json:"last_commit"`
}

// Table kinds.
const (
	kindRaw       = "raw"
	kindDLQ       = "dlq"
	kindReadModel = "read_model"
	kindAudit     = "audit"
)

// tableKind is a table's kind, as the status and the lineage name it.
func tableKind(spec *tableSpec) string {
	switch {
	case spec.dlq:
		return kindDLQ
	case spec.name == lake.TableAuditLog:
		return kindAudit
	case spec.readModel:
		return kindReadModel
	}
	return kindRaw
}

func ptr(v float64) *float64 { return &v }

// Status gathers the status of the service and its process.
func (s *Service) Status() StatusResponse {
	now := s.deps.Now()
	res := StatusResponse{Time: now.UTC().Format(time.RFC3339Nano), Tables: []TableStatus{}, Topics: []TopicStatus{},
		ReadModels: []ModelStatus{}, DLQ: DLQStatus{Table: s.deps.Layout.DLQ()}}
	if e := s.lastErr.Load(); e != nil {
		res.RefreshError = *e
	}
	if ns := s.lastOK.Load(); ns != 0 {
		res.LastRefresh = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
	}
	if s.deps.Health != nil {
		r := s.deps.Health.Report()
		res.Readiness = &r
	}

	cur := s.sampler.gather(now)
	base := s.sampler.base()
	if base != nil && cur.at.After(base.at) {
		res.WindowSeconds = cur.at.Sub(base.at).Seconds()
	} else {
		base = nil
	}

	// Topics: rates, lag (records summed, seconds the oldest partition).
	consumed := rates(cur, base, metricConsumed, "topic")
	lagRec, hasLagRec := cur.sumBy(metricLagRecords, "topic")
	lagSec, hasLagSec := cur.maxBy(metricLagSeconds, "topic")
	topics := map[string]bool{}
	for _, m := range []map[string]float64{consumed, lagRec, lagSec} {
		for t := range m {
			topics[t] = true
		}
	}
	if consumed != nil {
		res.Ingest.RecordsPerSecond = ptr(0)
	}
	if hasLagRec {
		res.Ingest.LagRecords = ptr(0)
	}
	if hasLagSec {
		res.Ingest.LagSeconds = ptr(0)
	}
	for _, t := range sortedKeys(topics) {
		ts := TopicStatus{Topic: t}
		if v, ok := consumed[t]; ok {
			ts.RecordsPerSecond = ptr(v)
			*res.Ingest.RecordsPerSecond += v
		}
		if v, ok := lagRec[t]; ok {
			ts.LagRecords = ptr(v)
			*res.Ingest.LagRecords += v
		}
		if v, ok := lagSec[t]; ok {
			ts.LagSeconds = ptr(v)
			*res.Ingest.LagSeconds = max(*res.Ingest.LagSeconds, v)
		}
		res.Topics = append(res.Topics, ts)
	}

	if dlq, ok := cur.sumBy(metricDLQ, "reason"); ok {
		res.DLQ.ByReason, res.DLQ.Total = map[string]float64{}, ptr(0)
		for r, v := range dlq {
			if v > 0 { // ingest sets every reason up front, at 0
				res.DLQ.ByReason[r] = v
				*res.DLQ.Total += v
			}
		}
	}

	// Tables, from the generation in service.
	rowRates := rates(cur, base, metricRowsCommit, "table")
	fresh := histogramsBy(&cur, metricFreshness, "table")
	var freshBase map[string]histogram
	if base != nil {
		freshBase = histogramsBy(base, metricFreshness, "table")
	}
	gen := s.gen.Load()
	if gen == nil {
		return res
	}
	res.Generation = gen.id
	for _, st := range gen.tables {
		ts := TableStatus{Name: st.spec.name, Kind: tableKind(st.spec), Topic: st.spec.topic, DataFiles: len(st.files), Refused: st.refused}
		if st.hasSnap {
			id := strconv.FormatInt(st.snapshot, 10)
			ts.SnapshotID = &id
			at := st.committed.UTC().Format(time.RFC3339Nano)
			ts.LastCommit = &at
			ts.LastCommitAgeSeconds = ptr(max(0, now.Sub(st.committed).Seconds()))
		}
		for _, f := range st.files {
			ts.Rows += f.rows
		}
		if v, ok := rowRates[st.spec.name]; ok {
			ts.RowsPerSecond = ptr(v)
		}
		if h, ok := fresh[st.spec.name]; ok {
			if old, ok := freshBase[st.spec.name]; ok {
				h = h.since(old)
			}
			p50, ok50 := h.quantile(0.5)
			p95, ok95 := h.quantile(0.95)
			if ok50 && ok95 {
				ts.Freshness = &Quantiles{P50: p50, P95: p95}
			}
		}
		res.Tables = append(res.Tables, ts)
		if ts.Kind == kindReadModel {
			ms := ModelStatus{Name: ts.Name, State: "serving", LastCommit: ts.LastCommit}
			switch {
			case st.refused != "":
				ms.State, ms.Reason = "refused", st.refused
			case !st.hasSnap:
				ms.State = "empty"
			}
			res.ReadModels = append(res.ReadModels, ms)
		}
	}
	return res
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Service) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, s.Status())
}
