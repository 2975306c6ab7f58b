package lake

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Column names shared by writers and readers.
const (
	ColEventID        = "event_id"
	ColSource         = "source"
	ColType           = "type"
	ColTs             = "ts"
	ColPayload        = "payload"
	ColMetadata       = "metadata"
	ColTraceID        = "trace_id"
	ColSpanID         = "span_id"
	ColKafkaTopic     = "kafka_topic"
	ColKafkaPartition = "kafka_partition"
	ColKafkaOffset    = "kafka_offset"
	ColKafkaTimestamp = "kafka_timestamp"
	ColIngestedAt     = "ingested_at"

	ColRaw     = "raw"
	ColReason  = "reason"
	ColDetail  = "detail"
	ColKey     = "kafka_key"
	ColSize    = "size"
	ColSubject = "subject"        // dead letters: the schema subject the payload was checked against
	ColVersion = "schema_version" // ... and its version
	ColField   = "field"          // ... and the JSON pointer of the value that failed

	// ColReplayID, on a raw table, marks an event that a DLQ replay
	// committed (null for events ingest read from Kafka); on the
	// dead-letter table it marks a row that a replay resolved (null:
	// pending). ColReplayedAt says when, on the dead-letter table.
	ColReplayID   = "replay_id"
	ColReplayedAt = "replayed_at"
)

// envelopeColumns are the columns every raw table has before its typed
// payload columns.
var envelopeColumns = map[string]bool{
	ColEventID: true, ColSource: true, ColType: true, ColTs: true, ColPayload: true, ColMetadata: true,
	ColTraceID: true, ColSpanID: true, ColKafkaTopic: true, ColKafkaPartition: true, ColKafkaOffset: true,
	ColKafkaTimestamp: true, ColIngestedAt: true, ColReplayID: true,
}

// ReplayIDField is the raw tables' replay_id column. Tables created before
// it existed get it from the first replay into them (Catalog.Evolve).
func ReplayIDField() iceberg.NestedField {
	return iceberg.NestedField{ID: 14, Name: ColReplayID, Type: iceberg.PrimitiveTypes.String,
		Doc: "the DLQ replay that committed the event (dlq_replays.replay_id); null when ingest read it from Kafka"}
}

// IsEnvelopeColumn reports whether a raw-table column is one of the
// envelope's or Kafka's (every other column is a typed payload column).
func IsEnvelopeColumn(name string) bool { return envelopeColumns[name] }

// Table property keys eventlake sets on its tables.
const (
	PropKind  = "eventlake.table-kind" // raw | dlq | read-model | erasure_log | audit_log | replay_log
	PropTopic = "eventlake.topic"      // the Kafka topic a raw table holds
	// PropTypePrefix + type is set on a raw table for every event type it
	// holds typed columns for; readers build a view per type from them.
	// One key per value: processes adding types at once never overwrite
	// each other (a catalog applies property updates key by key).
	PropTypePrefix = "eventlake.event-type."
	// PropSubjectPrefix + column names a column that identifies the
	// person an event is about (schema annotation x-eventlake-subject);
	// the value is the payload property it holds.
	PropSubjectPrefix = "eventlake.subject-column."
	// PropSourcePrefix + the escaped envelope source (SourceKey) is set
	// on a raw table for every source ingest committed events of, to
	// "events,last_seen_unix_ms" (SourcesOf reads it, MergeSources writes
	// it): the lineage's sources per topic. One key per source, for the
	// same reason as PropTypePrefix; at most MaxSources of them, the
	// events of further sources are counted under PropSourceOther.
	PropSourcePrefix = "eventlake.source."
	PropSourceOther  = "eventlake.sources-other"
)

// TypesOf lists the event types a raw table's properties name, sorted.
func TypesOf(p iceberg.Properties) []string {
	var out []string
	for k := range p {
		if t, ok := strings.CutPrefix(k, PropTypePrefix); ok {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// SubjectColumn is a column that identifies a person, and the payload
// property it holds.
type SubjectColumn struct{ Column, Property string }

// SubjectColumnsOf lists the subject columns a raw table's properties
// name, by column.
func SubjectColumnsOf(p iceberg.Properties) []SubjectColumn {
	var out []SubjectColumn
	for k, v := range p {
		if c, ok := strings.CutPrefix(k, PropSubjectPrefix); ok {
			out = append(out, SubjectColumn{Column: c, Property: v})
		}
	}
	slices.SortFunc(out, func(a, b SubjectColumn) int { return strings.Compare(a.Column, b.Column) })
	return out
}

// BloomFilterColumns are the columns of a table whose Parquet files get
// bloom filters (FileOptions.BloomFilters), the same for every writer of
// the table (ingest, the compactor): the identifiers lookups ask for by
// equality. On a raw table they are event_id, the subject columns (the
// person an event is about) and every typed payload column of strings
// whose name ends in _id (order_id, user_id, product_id ...); other
// tables have none. The rule is by name because schemas do not say which
// properties are identifiers, and ids are what one looks events up by;
// a low-cardinality id (product_id) is dictionary-encoded and its filter
// is filled from the dictionary, at little cost. The envelope's own ids
// (trace_id, span_id, replay_id) are left out: no lookup is served by
// them.
func BloomFilterColumns(sc *iceberg.Schema, props iceberg.Properties) []string {
	if props[PropKind] != KindRaw {
		return nil
	}
	subject := map[string]bool{}
	for _, c := range SubjectColumnsOf(props) {
		subject[c.Column] = true
	}
	var out []string
	for _, f := range sc.Fields() {
		switch {
		case f.Name == ColEventID:
		case IsEnvelopeColumn(f.Name):
			continue
		case subject[f.Name]:
		case strings.HasSuffix(f.Name, "_id") && f.Type.Equals(iceberg.PrimitiveTypes.String):
		default:
			continue
		}
		out = append(out, f.Name)
	}
	return out
}

// Table kinds (PropKind).
const (
	KindRaw       = "raw"
	KindDLQ       = "dlq"
	KindReadModel = "read-model"
	// KindAuditLog is the query audit log (AuditLogTableDef): readable by
	// the compliance and admin roles only, and exempt from erasure.
	KindAuditLog = "audit_log"
	// KindReplayLog is the log of DLQ replays (DLQReplaysTableDef).
	KindReplayLog = "replay_log"
)

// SumType is the exact decimal type of read-model sums of money: 38
// digits, so that no sum of accepted amounts can overflow (an amount
// column holds at most 36 digits before the point, and a sum of 10^20 of
// them still fits).
var SumType = iceberg.DecimalTypeOf(38, 2)

// TableDef is the registered layout of one lake table.
type TableDef struct {
	Name       string
	Schema     *iceberg.Schema
	Spec       iceberg.PartitionSpec
	Properties iceberg.Properties
}

// baseProperties are the table properties every eventlake table gets.
//
//   - format-version 2: readable by every engine in use (Spark, Trino,
//     DuckDB); v3 would force row lineage ids on every externally written
//     file for no benefit here.
//   - zstd Parquet, matching what ingest writes.
//   - manifest merging keeps the number of manifests bounded under
//     second-scale commits, so that scan planning stays fast between
//     compactions.
//   - commit retries stay 0: ingest resolves conflicts itself, because a
//     retry must merge Kafka offsets into the summary (iceberg-go's replay
//     would re-use stale ones).
func baseProperties() iceberg.Properties {
	return iceberg.Properties{
		"format-version":                             "2",
		"write.format.default":                       "parquet",
		"write.parquet.compression-codec":            "zstd",
		"commit.manifest-merge.enabled":              "true",
		"commit.manifest.min-count-to-merge":         "50",
		"commit.retry.num-retries":                   "0",
		"write.metadata.delete-after-commit.enabled": "true",
		// Deletes, updates and merges rewrite files (copy-on-write): readers
		// never need to apply delete files.
		"write.delete.mode":                    "copy-on-write",
		"write.update.mode":                    "copy-on-write",
		"write.merge.mode":                     "copy-on-write",
		"write.metadata.previous-versions-max": "20",
	}
}

// RawTableDef is the layout of the raw event table of one topic.
//
// Columns: the envelope (event_id, source, type, ts as timestamptz,
// payload exactly as received, metadata and its trace_id/span_id), the
// Kafka coordinates (topic, partition, offset, record timestamp), ingest
// time, then the typed payload columns of the event types it holds (the
// schema package maps an event type's schema to them; they grow as
// schemas evolve, see Catalog.Evolve).
//
// Partition spec: hour(ts). Event time is what every reader filters on
// (dashboards ask for the last minutes or hours, backfills and audits for a
// range, retention for "older than N days"); hours bound a partition to what
// one compaction pass can rewrite even at a million events a second, let the
// compactor finish an hour a few minutes after it closes (allowed lateness)
// instead of waiting for a day to end, and keep a 90-day retention at ~2,200
// partitions. A micro-batch spans one hour, two around the top of the hour.
// Topic/partition are not partition columns: they would multiply small files
// per commit without helping any query.
func RawTableDef(name, topic string, typed []iceberg.NestedField, props iceberg.Properties) TableDef {
	fields := []iceberg.NestedField{
		{ID: 1, Name: ColEventID, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "producer-assigned unique event id"},
		{ID: 2, Name: ColSource, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 3, Name: ColType, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 4, Name: ColTs, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true, Doc: "event time"},
		{ID: 5, Name: ColPayload, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "payload JSON exactly as received"},
		{ID: 6, Name: ColMetadata, Type: iceberg.PrimitiveTypes.String, Doc: "metadata JSON exactly as received"},
		{ID: 7, Name: ColTraceID, Type: iceberg.PrimitiveTypes.String},
		{ID: 8, Name: ColSpanID, Type: iceberg.PrimitiveTypes.String},
		{ID: 9, Name: ColKafkaTopic, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 10, Name: ColKafkaPartition, Type: iceberg.PrimitiveTypes.Int32, Required: true},
		{ID: 11, Name: ColKafkaOffset, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 12, Name: ColKafkaTimestamp, Type: iceberg.PrimitiveTypes.TimestampTz},
		{ID: 13, Name: ColIngestedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		ReplayIDField(),
	}
	for i, f := range typed {
		f.ID, f.Required = 15+i, false
		fields = append(fields, f)
	}
	p := baseProperties()
	p[PropKind] = KindRaw
	p[PropTopic] = topic
	for k, v := range props {
		p[k] = v
	}
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{4}, FieldID: 1000, Name: "ts_hour", Transform: iceberg.HourTransform{},
		}),
		Properties: p,
	}
}

// DLQTableDef is the layout of the dead-letter table: every rejected message
// with its raw bytes, the reason and where it came from. It is partitioned
// by day(ingested_at): a rejected message may have no usable event time, and
// retention of dead letters is about when they arrived.
func DLQTableDef(name string) TableDef {
	fields := []iceberg.NestedField{
		{ID: 1, Name: ColRaw, Type: iceberg.PrimitiveTypes.Binary, Doc: "message value exactly as received; null for a tombstone"},
		{ID: 2, Name: ColReason, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 3, Name: ColDetail, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 4, Name: ColKafkaTopic, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 5, Name: ColKafkaPartition, Type: iceberg.PrimitiveTypes.Int32, Required: true},
		{ID: 6, Name: ColKafkaOffset, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 7, Name: ColKafkaTimestamp, Type: iceberg.PrimitiveTypes.TimestampTz},
		{ID: 8, Name: ColKey, Type: iceberg.PrimitiveTypes.Binary},
		{ID: 9, Name: ColSize, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "length of the message value in bytes"},
		{ID: 10, Name: ColIngestedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{ID: 11, Name: ColSubject, Type: iceberg.PrimitiveTypes.String, Doc: "schema subject the payload was checked against"},
		{ID: 12, Name: ColVersion, Type: iceberg.PrimitiveTypes.Int32, Doc: "schema version the payload was checked against"},
		{ID: 13, Name: ColField, Type: iceberg.PrimitiveTypes.String, Doc: "JSON pointer of the payload value that failed"},
	}
	fields = append(fields, DLQReplayFields()...)
	props := baseProperties()
	props[PropKind] = KindDLQ
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{10}, FieldID: 1000, Name: "ingested_day", Transform: iceberg.DayTransform{},
		}),
		Properties: props,
	}
}

// DLQReplayFields are the dead-letter table's replay columns: null while a
// row is pending, set by the replay that resolved it (its event is in its
// table, committed by that replay or found there already). A row that is
// still invalid stays pending, with the reason of its last check. Tables
// created before they existed get them from the first replay.
func DLQReplayFields() []iceberg.NestedField {
	return []iceberg.NestedField{
		{ID: 14, Name: ColReplayID, Type: iceberg.PrimitiveTypes.String, Doc: "the replay that resolved the row (dlq_replays.replay_id); null: pending"},
		{ID: 15, Name: ColReplayedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Doc: "when that replay committed"},
	}
}

// TableDLQReplays is the default name of the replay log.
const TableDLQReplays = "dlq_replays"

// Replay log column names.
const (
	ColReplayRequestedBy = "requested_by"
	ColReplayRequestedAt = "requested_at"
	ColReplayFinishedAt  = "finished_at"
	ColReplayTrigger     = "trigger"
	ColReplayFilter      = "filter"
	ColReplaySelected    = "selected"
	ColReplayReplayed    = "replayed"
	ColReplayInvalid     = "still_invalid"
	ColReplayPresent     = "already_present"
	ColReplayTables      = "tables"
	ColReplaySnapshots   = "snapshot_ids"
	ColReplayDLQSnapshot = "dlq_snapshot_id"
)

// DLQReplaysTableDef is the layout of the replay log: one row per DLQ
// replay that changed the lake, saying who asked (requested_by: a person's
// name, or auto for the replays that a schema registration started), when,
// the filter it selected dead letters by (JSON), what became of them
// (selected = replayed + still_invalid + already_present), the rows it
// committed per table and the snapshot of each table it made (JSON
// objects). Partitioned by day(requested_at).
func DLQReplaysTableDef(name string) TableDef {
	fields := []iceberg.NestedField{
		{ID: 1, Name: ColReplayID, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 2, Name: ColReplayRequestedBy, Type: iceberg.PrimitiveTypes.String, Required: true},
		{ID: 3, Name: ColReplayRequestedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{ID: 4, Name: ColReplayFinishedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{ID: 5, Name: ColReplayTrigger, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "manual | auto"},
		{ID: 6, Name: ColReplayFilter, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "JSON: the filter that selected the dead letters"},
		{ID: 7, Name: ColReplaySelected, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "pending dead letters the filter selected"},
		{ID: 8, Name: ColReplayReplayed, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "events this replay committed to their tables"},
		{ID: 9, Name: ColReplayInvalid, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "dead letters still invalid: pending, with their new reason"},
		{ID: 10, Name: ColReplayPresent, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "events whose event_id their table already held: resolved, not doubled"},
		{ID: 11, Name: ColReplayTables, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "JSON object: table -> events committed"},
		{ID: 12, Name: ColReplaySnapshots, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "JSON object: table -> snapshot id this replay made"},
		{ID: 13, Name: ColReplayDLQSnapshot, Type: iceberg.PrimitiveTypes.Int64, Doc: "the dead-letter table's snapshot that marked the rows"},
	}
	props := baseProperties()
	props[PropKind] = KindReplayLog
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{3}, FieldID: 1000, Name: "requested_day", Transform: iceberg.DayTransform{},
		}),
		Properties: props,
	}
}

// TableAuditLog is the default name of the query audit log.
const TableAuditLog = "audit_log"

// Audit log column names.
const (
	ColAuditID        = "id"
	ColAuditTs        = "ts"
	ColAuditPrincipal = "principal"
	ColAuditRole      = "role"
	ColAuditClient    = "client"
	ColAuditProtocol  = "protocol"
	ColAuditKind      = "kind"
	ColAuditStatement = "statement"
	ColAuditObjects   = "objects"
	ColAuditSnapshots = "snapshot_ids"
	ColAuditRows      = "rows_returned"
	ColAuditBytes     = "bytes_returned"
	ColAuditDuration  = "duration_us"
	ColAuditOutcome   = "outcome"
	ColAuditError     = "error"
	ColAuditRequestID = "request_id"
	ColAuditLogNode   = "log_node"
	ColAuditLogSeq    = "log_seq"
)

// AuditLogTableDef is the layout of the query audit log (package audit):
// one row per request that read data or was refused, saying who asked
// (token name, role, client address), when, what (statement, the tables,
// views and models it named, the snapshot of each table it read) and how
// it ended (rows and bytes returned, duration, outcome, error). Lists and
// maps are JSON text, so that every engine reads plain columns. log_node
// and log_seq say where the row was in the local log it was shipped from:
// the sequence of a node has no gaps, which lets an auditor check that
// nothing is missing. Partitioned by day(ts): audits ask for time ranges,
// and a day holds few enough requests for one file per day once
// compacted.
func AuditLogTableDef(name string) TableDef {
	fields := []iceberg.NestedField{
		{ID: 1, Name: ColAuditID, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "unique id of the record"},
		{ID: 2, Name: ColAuditTs, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true, Doc: "when the request arrived"},
		{ID: 3, Name: ColAuditPrincipal, Type: iceberg.PrimitiveTypes.String, Doc: "token name; null when the caller was not authenticated"},
		{ID: 4, Name: ColAuditRole, Type: iceberg.PrimitiveTypes.String},
		{ID: 5, Name: ColAuditClient, Type: iceberg.PrimitiveTypes.String, Doc: "the caller's network address (host:port)"},
		{ID: 6, Name: ColAuditProtocol, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "http | postgres"},
		{ID: 7, Name: ColAuditKind, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "sql | model | stream"},
		{ID: 8, Name: ColAuditStatement, Type: iceberg.PrimitiveTypes.String, Doc: "the SQL text, or the model API call"},
		{ID: 9, Name: ColAuditObjects, Type: iceberg.PrimitiveTypes.String, Doc: "JSON array of the tables, views and models named"},
		{ID: 10, Name: ColAuditSnapshots, Type: iceberg.PrimitiveTypes.String, Doc: "JSON object: table -> snapshot id read"},
		{ID: 11, Name: ColAuditRows, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 12, Name: ColAuditBytes, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{ID: 13, Name: ColAuditDuration, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "microseconds from arrival to the end of the answer"},
		{ID: 14, Name: ColAuditOutcome, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "ok | denied | error | canceled | truncated | ..."},
		{ID: 15, Name: ColAuditError, Type: iceberg.PrimitiveTypes.String},
		{ID: 16, Name: ColAuditRequestID, Type: iceberg.PrimitiveTypes.String, Doc: "X-Request-Id of the request"},
		{ID: 17, Name: ColAuditLogNode, Type: iceberg.PrimitiveTypes.String, Required: true, Doc: "id of the local log the record was shipped from"},
		{ID: 18, Name: ColAuditLogSeq, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "position in that log: gap-free per node"},
	}
	props := baseProperties()
	props[PropKind] = KindAuditLog
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{2}, FieldID: 1000, Name: "ts_day", Transform: iceberg.DayTransform{},
		}),
		Properties: props,
	}
}

// Read-model column names.
const (
	ColMinute     = "minute"
	ColRevenue    = "revenue"
	ColOrderCount = "order_count"
)

// Read-model table names.
const (
	TableOrderRevenueMinute = "order_revenue_minute"
)

// ReadModelProperties are the properties of a read-model table.
func ReadModelProperties(kind string) iceberg.Properties { return readModelProps(kind) }

// readModelProps are the properties of read-model tables.
func readModelProps(kind string) iceberg.Properties {
	p := baseProperties()
	p[PropKind] = KindReadModel
	p["eventlake.read-model"] = kind
	return p
}

// TopicTable maps a Kafka topic to its raw table.
type TopicTable struct {
	Topic string `yaml:"topic"`
	Table string `yaml:"table"`
}

// LayoutConfig names the lake's tables; it is the ingest section of the
// configuration, since ingest creates the raw tables.
type LayoutConfig struct {
	// Topics map topics to raw tables explicitly.
	Topics []TopicTable
	// Pattern, if set, also takes every topic it matches (a Go regexp,
	// anchored at both ends); such a topic's table is TableName(topic).
	Pattern string
	// Exclude lists topics the pattern must not take (eventlake's own
	// output topics, changelogs that are not envelopes).
	Exclude []string
	// DLQ is the dead-letter table.
	DLQ string
}

// Layout is the lake's table layout: which raw table each topic goes to,
// the dead-letter table, and the definitions of every table. It is built
// once from configuration and handed to every stage.
type Layout struct {
	cfg      LayoutConfig
	explicit map[string]string // topic -> table
	tables   map[string]bool   // the explicit tables and the DLQ
	pattern  *regexp.Regexp
	exclude  map[string]bool
}

// NewLayout validates cfg and builds the layout.
func NewLayout(cfg LayoutConfig) (*Layout, error) {
	l := &Layout{cfg: cfg, explicit: map[string]string{}, tables: map[string]bool{cfg.DLQ: true}, exclude: map[string]bool{}}
	if cfg.DLQ == "" {
		return nil, errors.New("ingest.dlq_table is required")
	}
	seenTable := map[string]string{cfg.DLQ: "the dead-letter table"}
	for i, t := range cfg.Topics {
		if t.Topic == "" || t.Table == "" {
			return nil, fmt.Errorf("ingest.topics[%d]: topic and table are required", i)
		}
		if !ValidTableName(t.Table) {
			return nil, fmt.Errorf("ingest.topics[%d]: table %q: use letters, digits and _ (starting with a letter)", i, t.Table)
		}
		if _, dup := l.explicit[t.Topic]; dup {
			return nil, fmt.Errorf("ingest.topics[%d]: topic %q listed twice", i, t.Topic)
		}
		if other, dup := seenTable[t.Table]; dup {
			return nil, fmt.Errorf("ingest.topics[%d]: table %q is already used by %s (one raw table per topic, distinct from the dead-letter table)", i, t.Table, other)
		}
		l.explicit[t.Topic] = t.Table
		l.tables[t.Table] = true
		seenTable[t.Table] = "topic " + t.Topic
	}
	if cfg.Pattern != "" {
		re, err := regexp.Compile("^(?:" + cfg.Pattern + ")$")
		if err != nil {
			return nil, fmt.Errorf("ingest.topic_pattern: %w", err)
		}
		l.pattern = re
	}
	if len(cfg.Topics) == 0 && l.pattern == nil {
		return nil, errors.New("ingest.topics or ingest.topic_pattern: at least one topic is required")
	}
	for _, t := range cfg.Exclude {
		l.exclude[t] = true
	}
	return l, nil
}

// Pattern is the regexp of topics taken by pattern (nil: none).
func (l *Layout) Pattern() *regexp.Regexp { return l.pattern }

// Explicit reports whether topic is mapped in ingest.topics.
func (l *Layout) Explicit(topic string) bool {
	_, ok := l.explicit[topic]
	return ok
}

// Topics are the explicitly mapped topics.
func (l *Layout) Topics() []TopicTable { return l.cfg.Topics }

// DLQ is the dead-letter table's name.
func (l *Layout) DLQ() string { return l.cfg.DLQ }

// TableFor returns the raw table of topic, and whether eventlake takes
// the topic at all: an explicit mapping, else a topic the pattern matches
// that is neither internal (a leading _) nor excluded, named by
// TableName unless that names an explicitly mapped table or the DLQ.
// Two pattern topics with one name (a.b and a-b) are told apart by the
// table's topic property (CheckTopic).
func (l *Layout) TableFor(topic string) (string, bool) {
	if t, ok := l.explicit[topic]; ok {
		return t, true
	}
	if l.pattern == nil || l.exclude[topic] || strings.HasPrefix(topic, "_") || !l.pattern.MatchString(topic) {
		return "", false
	}
	name := TableName(topic)
	if l.tables[name] || !ValidTableName(name) {
		return "", false
	}
	return name, true
}

// CheckTopic returns an error when raw table t (nil: not created yet)
// holds another topic than topic (one table per topic), or is not a raw
// table at all (a topic taken by pattern whose name is that of the
// dead-letter table, a read model or a log table).
func CheckTopic(t *table.Table, topic string) error {
	if t == nil {
		return nil
	}
	if kind := t.Properties()[PropKind]; kind != "" && kind != KindRaw {
		return fmt.Errorf("table %s is a %s table, not a raw table: topic %s cannot be written to it (map it to another table in ingest.topics, or exclude it)", t.Identifier(), kind, topic)
	}
	if held := t.Properties()[PropTopic]; held != "" && held != topic {
		return fmt.Errorf("raw table %s holds topic %s, not %s (two topics with one table name: map one of them in ingest.topics)", t.Identifier(), held, topic)
	}
	return nil
}

// TableName is the raw table of a topic taken by pattern: the topic with
// '.' and '-' replaced by '_' (payments.captured -> payments_captured).
func TableName(topic string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(topic)
}

// ValidTableName reports whether s can name a lake table.
func ValidTableName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}
