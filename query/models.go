package query

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventlake/eventlake/auth"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
)

// HotModels is the hot tier as the query service serves declared read
// models from it: each model's committed rows merged with the events read
// after them (the streamer implements it).
type HotModels interface {
	// ModelAnswer answers q over the model named name; the errors
	// readmodel.ErrNotMaintained and ErrLoading say why it cannot.
	ModelAnswer(name string, q readmodel.Query) (readmodel.Answer, error)
	// ServeModelStream streams the model's changed rows as Server-Sent
	// Events (coalesced per stream.coalesce; Last-Event-ID resumes).
	ServeModelStream(w http.ResponseWriter, r *http.Request, name string)
}

// ServeHot makes the service answer the model endpoints from the hot
// tier. Call it before the handler serves.
func (s *Service) ServeHot(h HotModels) { s.models = h }

// ModelInfo is one declared model in GET /v1/models.
type ModelInfo struct {
	Name   string                `json:"name"`
	SQL    string                `json:"sql"`
	Source string                `json:"source"`
	Type   string                `json:"type"`
	Bucket string                `json:"bucket"`
	Width  string                `json:"width"`
	Keys   []string              `json:"keys"`
	Cols   []readmodel.OutColumn `json:"columns"`
	// SnapshotID is the committed snapshot the hot tier serves (a string:
	// 19 digits do not survive JavaScript's numbers); null before the
	// first commit or without a hot tier.
	SnapshotID *string `json:"snapshot_id"`
	// CommittedAt is when that snapshot was committed; FreshnessSeconds
	// how long ago (the hot tier adds every event read since).
	CommittedAt      string   `json:"committed_at,omitempty"`
	FreshnessSeconds *float64 `json:"freshness_seconds,omitempty"`
	Status           string   `json:"status"`
}

// ModelResponse is the answer of GET /v1/models/{name}.
type ModelResponse struct {
	Model string `json:"model"`
	From  string `json:"from"`
	To    string `json:"to"`
	// SnapshotID is the committed snapshot (as a string), which covers
	// every event below Offsets; the rows add every event read after them,
	// up to Watermark (exclusive) per partition.
	SnapshotID *string               `json:"snapshot_id"`
	Offsets    lake.Offsets          `json:"offsets"`
	Watermark  lake.Offsets          `json:"watermark"`
	Columns    []readmodel.OutColumn `json:"columns"`
	// Rows hold an object per row: each column's value under its name
	// (handleModel writes them with readmodel.RowJSON, not as maps).
	Rows []map[string]any `json:"rows"`
	// ClosedBefore: buckets starting before it are closed (the watermark
	// passed their end); the answer is cacheable when To is not after it.
	ClosedBefore string  `json:"closed_before,omitempty"`
	ElapsedMs    float64 `json:"elapsed_ms"`
}

func (s *Service) model(name string) *readmodel.Model {
	for _, m := range s.deps.Models {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (s *Service) handleModels(w http.ResponseWriter, r *http.Request) {
	now := s.deps.Now()
	out := struct {
		Models []ModelInfo `json:"models"`
	}{Models: []ModelInfo{}}
	for _, m := range s.deps.Models {
		if !s.mayRead(r, m.Name) {
			continue
		}
		info := ModelInfo{Name: m.Name, SQL: m.SQL, Source: m.Source, Type: m.Type, Bucket: m.Bucket.Name, Width: m.WidthName(),
			Keys: []string{}, Cols: m.OutColumns(), Status: "no hot tier in this process: query its table with SQL"}
		for _, k := range m.Keys {
			info.Keys = append(info.Keys, k.Name)
		}
		if s.models != nil {
			a, err := s.models.ModelAnswer(m.Name, readmodel.Query{})
			switch {
			case err != nil:
				info.Status = err.Error()
			default:
				info.Status = "serving"
				if a.HasSnapshot {
					id := strconv.FormatInt(a.SnapshotID, 10)
					info.SnapshotID = &id
					info.CommittedAt = a.SnapshotTime.Format(time.RFC3339Nano)
					f := max(now.Sub(a.SnapshotTime).Seconds(), 0)
					info.FreshnessSeconds = &f
				}
			}
		}
		out.Models = append(out.Models, info)
	}
	s.writeJSON(w, http.StatusOK, out)
}

// mayRead reports whether the caller's role has a grant on object (every
// caller when auth is off).
func (s *Service) mayRead(r *http.Request, object string) bool {
	p, ok := auth.From(r.Context())
	if !ok || s.deps.Policy == nil {
		return true
	}
	role, ok := s.deps.Policy.Role(p.Role)
	return ok && role.Grant(object) != nil
}

// MaxModelRange bounds the from..to range of one model request.
const MaxModelRange = 366 * 24 * time.Hour

func (s *Service) handleModel(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	bad := func(format string, args ...any) {
		s.m.rejected.WithLabelValues(rejectRequest).Inc()
		s.writeError(w, &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: fmt.Sprintf(format, args...)})
	}
	m := s.model(r.PathValue("name"))
	if m == nil {
		s.writeError(w, &apiError{status: http.StatusNotFound, code: codeNotFound,
			msg: fmt.Sprintf("%q is not a declared read model (GET /v1/models lists them)", r.PathValue("name"))})
		return
	}
	q := r.URL.Query()
	now := s.deps.Now()
	to, err := parseTimeParam(q.Get("to"), now, now)
	if err != nil {
		bad("to: %v", err)
		return
	}
	from, err := parseTimeParam(q.Get("from"), to.Add(-time.Hour), now)
	if err != nil {
		bad("from: %v", err)
		return
	}
	if !to.After(from) {
		bad("to (%s) must be after from (%s); the range is [from, to)", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
		return
	}
	if to.Sub(from) > MaxModelRange {
		bad("the range spans %v; at most %v per request", to.Sub(from), MaxModelRange)
		return
	}
	mq := readmodel.Query{From: ceilMicros(from), To: ceilMicros(to), Where: map[string]readmodel.Value{}}
	for param, vals := range q {
		switch param {
		case "from", "to", "group", "every":
			continue
		}
		var key *readmodel.Column
		for i := range m.Keys {
			if m.Keys[i].Name == param {
				key = &m.Keys[i]
			}
		}
		if key == nil {
			bad("%s is neither from, to, group, every nor a key column of %s (keys: %s)", param, m.Name, m.KeyNames())
			return
		}
		v, ok := readmodel.ParseKey(key.Type, vals[0])
		if !ok {
			bad("%s=%q is not a value of its type %s", param, vals[0], key.Type)
			return
		}
		mq.Where[param] = v
	}
	if q.Has("group") {
		mq.Group = []string{}
		for _, g := range strings.Split(q.Get("group"), ",") {
			if g = strings.TrimSpace(g); g != "" {
				mq.Group = append(mq.Group, g)
			}
		}
	}
	switch e := q.Get("every"); e {
	case "":
	case "all":
		mq.Every = readmodel.All
	default:
		d, err := time.ParseDuration(e)
		if err != nil || d <= 0 {
			bad("every=%q: a duration such as 5m, 1h, 24h, or all", e)
			return
		}
		mq.Every = d.Microseconds()
	}
	if err := m.CheckQuery(mq); err != nil {
		bad("%v", err)
		return
	}
	if s.models == nil {
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			msg: fmt.Sprintf("this process runs no hot tier: query the table %s with SQL (POST /v1/sql)", m.Name)})
		return
	}
	a, err := s.models.ModelAnswer(m.Name, mq)
	switch {
	case errors.Is(err, readmodel.ErrLoading):
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeNotReady, retryAfter: time.Second,
			msg: fmt.Sprintf("the hot tier is still loading %s; retry in a moment", m.Name)})
		return
	case err != nil:
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: fmt.Sprintf("%s: %v", m.Name, err)})
		return
	}
	if len(a.Rows) > s.cfg.MaxRows {
		bad("the answer holds %d rows, more than query.max_rows (%d): narrow the range, filter by a key, or merge with group= and every=",
			len(a.Rows), s.cfg.MaxRows)
		return
	}
	cols := answerColumns(m, mq)
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	body, err := appendModelRows((*buf)[:0], m, cols, a.Rows)
	if err != nil {
		s.writeEncodeError(w, err)
		return
	}
	*buf = body
	colsJSON, err := json.Marshal(cols)
	if err != nil {
		s.writeEncodeError(w, err)
		return
	}
	cacheable := false
	if a.Closed > 0 {
		cacheable = mq.To <= a.Closed
	}
	// Closed buckets change only by re-aggregation (a late event): an
	// ETag lets a dashboard revalidate them cheaply. It hashes what the
	// answer says: the declaration, the columns and the rows as sent.
	h := sha256.New()
	h.Write([]byte(m.Canonical + "|"))
	h.Write(colsJSON)
	h.Write(body)
	etag := `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
	w.Header().Set("ETag", etag)
	if cacheable {
		w.Header().Set("Cache-Control", "public, max-age=60")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	if slices.Contains(strings.Split(strings.ReplaceAll(r.Header.Get("If-None-Match"), " ", ""), ","), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	res := ModelResponse{Model: m.Name, From: from.UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano),
		Offsets: a.Offsets, Watermark: a.Read, Columns: cols}
	if a.HasSnapshot {
		id := strconv.FormatInt(a.SnapshotID, 10)
		res.SnapshotID = &id
	}
	if a.Closed > 0 {
		res.ClosedBefore = time.UnixMicro(a.Closed).UTC().Format(time.RFC3339Nano)
	}
	res.ElapsedMs = float64(time.Since(start).Microseconds()) / 1000
	out := s.bufs.get()
	defer s.bufs.put(out)
	if *out, err = appendModelResponse((*out)[:0], &res, colsJSON, body); err != nil {
		s.writeEncodeError(w, err)
		return
	}
	s.m.rowsReturned.WithLabelValues(endpointModels).Add(float64(len(a.Rows)))
	s.writeEncoded(w, *out)
}

// appendModelRows appends the JSON array of an answer's rows: an object
// per row, the columns cols under their names (keys sorted, as
// json.Marshal writes a map).
func appendModelRows(dst []byte, m *readmodel.Model, cols []readmodel.OutColumn, rows []*readmodel.Row) ([]byte, error) {
	enc := m.RowJSON(columnIndexes(m, cols))
	dst = append(dst, '[')
	var err error
	for i, r := range rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = enc.Append(dst, r); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// appendModelResponse appends res, with its columns and rows encoded
// already, as json.Marshal writes a ModelResponse (TestModelAnswerJSON
// holds them equal), and a newline.
func appendModelResponse(dst []byte, res *ModelResponse, colsJSON, rows []byte) ([]byte, error) {
	o := newJSONObject(dst)
	o.str("model", res.Model)
	o.str("from", res.From)
	o.str("to", res.To)
	o.val("snapshot_id", res.SnapshotID)
	o.val("offsets", res.Offsets)
	o.val("watermark", res.Watermark)
	o.raw("columns", colsJSON)
	o.raw("rows", rows)
	if res.ClosedBefore != "" {
		o.str("closed_before", res.ClosedBefore)
	}
	o.val("elapsed_ms", res.ElapsedMs)
	return o.end()
}

// writeEncoded sends a JSON answer encoded already.
func (s *Service) writeEncoded(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeEncodeError answers 500 for a response JSON cannot hold, as
// writeJSON does.
func (s *Service) writeEncodeError(w http.ResponseWriter, err error) {
	s.log.Error("encode response", logkey.Err, err)
	s.writeError(w, &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: "encode response: " + err.Error()})
}

func (s *Service) handleModelStream(w http.ResponseWriter, r *http.Request) {
	m := s.model(r.PathValue("name"))
	switch {
	case m == nil:
		s.writeError(w, &apiError{status: http.StatusNotFound, code: codeNotFound,
			msg: fmt.Sprintf("%q is not a declared read model (GET /v1/models lists them)", r.PathValue("name"))})
	case s.models == nil:
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			msg: "this process runs no hot tier: live updates come from a query process that reads the topics"})
	default:
		s.models.ServeModelStream(w, r, m.Name)
	}
}

// answerColumns are the columns of an answer: the model's, without the
// keys a group merged away.
func answerColumns(m *readmodel.Model, q readmodel.Query) []readmodel.OutColumn {
	cols := m.OutColumns()
	if q.Group == nil {
		return cols
	}
	out := cols[:0:0]
	for _, c := range cols {
		if c.Kind == "key" && !slices.Contains(q.Group, c.Name) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// columnIndexes are the positions in the model's Output of an answer's
// columns.
func columnIndexes(m *readmodel.Model, cols []readmodel.OutColumn) []int {
	all := m.OutColumns()
	out := make([]int, len(cols))
	for i, c := range cols {
		out[i] = slices.IndexFunc(all, func(o readmodel.OutColumn) bool { return o.Name == c.Name })
	}
	return out
}

var relativeTime = regexp.MustCompile(`^now(?:([+-])(\d+)(ms|s|m|h|d|w))?$`)

// parseTimeParam reads a time parameter: RFC 3339, epoch milliseconds,
// or relative to now (now, now-1h, now-15m, now-7d; units ms s m h d w).
// Empty is def.
func parseTimeParam(v string, def, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def.UTC(), nil
	}
	if m := relativeTime.FindStringSubmatch(v); m != nil {
		if m[1] == "" {
			return now.UTC(), nil
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
			"d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[3]]
		d := time.Duration(n) * unit
		if m[1] == "-" {
			d = -d
		}
		return now.Add(d).UTC(), nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is none of RFC 3339 (2026-11-26T10:00:00Z), epoch milliseconds (1795687200000) or now-1h (units ms s m h d w)", v)
	}
	return t.UTC(), nil
}
