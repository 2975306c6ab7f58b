package lake

import (
	"fmt"

	"github.com/apache/iceberg-go"
)

// Payload kinds: which typed payload columns a raw table carries beside the
// envelope columns.
const (
	KindOrders    = "orders"    // order.created: order_id, user_id, product_id, quantity, amount
	KindInventory = "inventory" // inventory.updated: product_id, warehouse, stock, delta
	KindGeneric   = "generic"   // envelope columns only
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

	ColOrderID   = "order_id"
	ColUserID    = "user_id"
	ColProductID = "product_id"
	ColQuantity  = "quantity"
	ColAmount    = "amount"
	ColWarehouse = "warehouse"
	ColStock     = "stock"
	ColDelta     = "delta"

	ColRaw    = "raw"
	ColReason = "reason"
	ColDetail = "detail"
	ColKey    = "kafka_key"
	ColSize   = "size"
)

// Table property keys eventlake sets on its tables.
const (
	PropKind  = "eventlake.table-kind" // raw | dlq
	PropTopic = "eventlake.topic"      // the Kafka topic a raw table holds
)

// AmountType is the exact decimal type of money columns.
var AmountType = iceberg.DecimalTypeOf(18, 2)

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
// Columns: the envelope (event_id, source, type, ts as timestamptz, payload
// exactly as received, metadata and its trace_id/span_id), the Kafka
// coordinates (topic, partition, offset, record timestamp), ingest time, and
// typed payload columns for the topic's kind.
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
func RawTableDef(name, topic, kind string) (TableDef, error) {
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
	}
	switch kind {
	case KindOrders:
		fields = append(fields,
			iceberg.NestedField{ID: 14, Name: ColOrderID, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: 15, Name: ColUserID, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: 16, Name: ColProductID, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: 17, Name: ColQuantity, Type: iceberg.PrimitiveTypes.Int64},
			iceberg.NestedField{ID: 18, Name: ColAmount, Type: AmountType},
		)
	case KindInventory:
		fields = append(fields,
			iceberg.NestedField{ID: 14, Name: ColProductID, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: 15, Name: ColWarehouse, Type: iceberg.PrimitiveTypes.String},
			iceberg.NestedField{ID: 16, Name: ColStock, Type: iceberg.PrimitiveTypes.Int64},
			iceberg.NestedField{ID: 17, Name: ColDelta, Type: iceberg.PrimitiveTypes.Int64},
		)
	case KindGeneric:
	default:
		return TableDef{}, fmt.Errorf("unknown payload kind %q (want %s, %s or %s)", kind, KindOrders, KindInventory, KindGeneric)
	}
	props := baseProperties()
	props[PropKind] = "raw"
	props[PropTopic] = topic
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{4}, FieldID: 1000, Name: "ts_hour", Transform: iceberg.HourTransform{},
		}),
		Properties: props,
	}, nil
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
	}
	props := baseProperties()
	props[PropKind] = "dlq"
	return TableDef{
		Name:   name,
		Schema: iceberg.NewSchema(0, fields...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{10}, FieldID: 1000, Name: "ingested_day", Transform: iceberg.DayTransform{},
		}),
		Properties: props,
	}
}

// Read-model column names.
const (
	ColMinute      = "minute"
	ColRevenue     = "revenue"
	ColOrderCount  = "order_count"
	ColUsersSketch = "users_sketch"
	ColActiveUsers = "active_users"
	ColEvents      = "events"
	ColUpdatedAt   = "updated_at"
)

// Read-model table names.
const (
	TableOrderRevenueMinute = "order_revenue_minute"
	TableUserActivityMinute = "user_activity_minute"
	TableInventoryHealth    = "inventory_health"
)

// readModelProps are the properties of read-model tables.
func readModelProps(kind string) iceberg.Properties {
	p := baseProperties()
	p[PropKind] = "read-model"
	p["eventlake.read-model"] = kind
	return p
}

// OrderRevenueMinuteDef is the per-minute revenue read model. It is a log
// of per-minute deltas: every commit covers a range of Kafka offsets and
// adds one row per event-time minute it touched, so a minute's figure is
// the sum of its rows (re-aggregation folds them into one). Partitioned by
// day(minute).
func OrderRevenueMinuteDef() TableDef {
	return TableDef{
		Name: TableOrderRevenueMinute,
		Schema: iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: ColMinute, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true, Doc: "event-time minute"},
			iceberg.NestedField{ID: 2, Name: ColRevenue, Type: AmountType, Required: true},
			iceberg.NestedField{ID: 3, Name: ColOrderCount, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{1}, FieldID: 1000, Name: "minute_day", Transform: iceberg.DayTransform{},
		}),
		Properties: readModelProps("order_revenue_minute"),
	}
}

// UserActivityMinuteDef holds, per event-time minute and commit, a
// HyperLogLog sketch of the active users (internal/hll; merge the sketches
// of a minute's rows to count it) and the estimate of the row's own sketch.
func UserActivityMinuteDef() TableDef {
	return TableDef{
		Name: TableUserActivityMinute,
		Schema: iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: ColMinute, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
			iceberg.NestedField{ID: 2, Name: ColUsersSketch, Type: iceberg.PrimitiveTypes.Binary, Required: true, Doc: "HyperLogLog sketch, precision 12 (internal/hll)"},
			iceberg.NestedField{ID: 3, Name: ColActiveUsers, Type: iceberg.PrimitiveTypes.Int64, Required: true, Doc: "estimate of this row's sketch"},
			iceberg.NestedField{ID: 4, Name: ColEvents, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{1}, FieldID: 1000, Name: "minute_day", Transform: iceberg.DayTransform{},
		}),
		Properties: readModelProps("user_activity_minute"),
	}
}

// InventoryHealthDef holds stock levels: every commit adds the latest
// stock of each product it saw; a product's current stock is its row with
// the latest updated_at.
func InventoryHealthDef() TableDef {
	return TableDef{
		Name: TableInventoryHealth,
		Schema: iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: ColProductID, Type: iceberg.PrimitiveTypes.String, Required: true},
			iceberg.NestedField{ID: 2, Name: ColStock, Type: iceberg.PrimitiveTypes.Int64, Required: true},
			iceberg.NestedField{ID: 3, Name: ColUpdatedAt, Type: iceberg.PrimitiveTypes.TimestampTz, Required: true, Doc: "event time of the update"},
			iceberg.NestedField{ID: 4, Name: ColWarehouse, Type: iceberg.PrimitiveTypes.String},
		),
		Spec:       *iceberg.UnpartitionedSpec,
		Properties: readModelProps("inventory_health"),
	}
}

// ReadModelDefs are the read-model tables, by name.
func ReadModelDefs() map[string]TableDef {
	return map[string]TableDef{
		TableOrderRevenueMinute: OrderRevenueMinuteDef(),
		TableUserActivityMinute: UserActivityMinuteDef(),
		TableInventoryHealth:    InventoryHealthDef(),
	}
}
