package audit

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Protocols a request arrives by (Record.Protocol).
const (
	ProtocolHTTP     = "http"
	ProtocolPostgres = "postgres"
)

// Kinds of request (Record.Kind).
const (
	KindSQL    = "sql"    // SQL over HTTP or the Postgres wire protocol
	KindModel  = "model"  // a read-model API call (/v1/metrics/..., /v1/windows)
	KindStream = "stream" // a stream subscription (SSE)
)

// Outcomes of a request (Record.Outcome).
const (
	OutcomeOK        = "ok"
	OutcomeDenied    = "denied"    // not authenticated, or not allowed to read what it named
	OutcomeError     = "error"     // bad SQL, a failed read, a timeout
	OutcomeCanceled  = "canceled"  // the caller went away
	OutcomeTruncated = "truncated" // answered, but cut at the row or byte cap
)

// Record is one request that read data or was refused. The query service
// fills it in and appends it before the answer is sent.
//
// Its JSON form is what the local log stores: the tags are part of the
// on-disk format.
type Record struct {
	// ID identifies the record; empty: "<log node>-<seq>", which is
	// unique too (see Log.Node).
	ID string `json:"id,omitempty"`
	// Time is when the request arrived; zero: when it was appended.
	// Stored in UTC, to the microsecond.
	Time time.Time `json:"time"`
	// Principal is the token name; empty for a caller that was not
	// authenticated.
	Principal string `json:"principal,omitempty"`
	// Role is the role the token was created with.
	Role string `json:"role,omitempty"`
	// Client is the caller's network address (host:port).
	Client string `json:"client,omitempty"`
	// Protocol is ProtocolHTTP or ProtocolPostgres.
	Protocol string `json:"protocol"`
	// Kind is KindSQL, KindModel or KindStream.
	Kind string `json:"kind"`
	// Statement is the SQL text, or the API call (method, path and
	// query); cut at Options.MaxStatementBytes.
	Statement string `json:"statement,omitempty"`
	// Objects are the tables, views and read models the request named.
	Objects []string `json:"objects,omitempty"`
	// SnapshotIDs maps each table read to the snapshot it was read at.
	SnapshotIDs map[string]int64 `json:"snapshot_ids,omitempty"`
	// Rows and Bytes are what the answer returned.
	Rows  int64 `json:"rows,omitempty"`
	Bytes int64 `json:"bytes,omitempty"`
	// Duration is from arrival to the end of the answer (for a stream:
	// to the end of the subscription, or 0 when it is recorded at its
	// start).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Outcome is one of the Outcome constants (another short word is
	// stored as given).
	Outcome string `json:"outcome"`
	// Error is the error message of a denied or failed request.
	Error string `json:"error,omitempty"`
	// RequestID is the request's X-Request-Id.
	RequestID string `json:"request_id,omitempty"`
}

// ErrInvalid wraps a record that lacks a field every record must have;
// it is a defect of the caller, not of the log.
var ErrInvalid = errors.New("invalid audit record")

func (r *Record) validate() error {
	switch {
	case r.Protocol == "":
		return fmt.Errorf("%w: protocol is required", ErrInvalid)
	case r.Kind == "":
		return fmt.Errorf("%w: kind is required", ErrInvalid)
	case r.Outcome == "":
		return fmt.Errorf("%w: outcome is required", ErrInvalid)
	case r.Rows < 0 || r.Bytes < 0 || r.Duration < 0:
		return fmt.Errorf("%w: rows, bytes and duration must not be negative", ErrInvalid)
	}
	return nil
}

// idOf is the record's id in the table.
func idOf(r *Record, node string, seq uint64) string {
	if r.ID != "" {
		return r.ID
	}
	return node + "-" + strconv.FormatUint(seq, 10)
}

// cutStatement cuts s to at most max bytes at a character boundary and
// says so at the end, in a SQL comment. max <= 0 keeps s whole.
func cutStatement(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + " /* eventlake: statement cut, " + strconv.Itoa(len(s)) + " bytes in all */"
}
