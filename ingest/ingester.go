package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	icecat "github.com/apache/iceberg-go/catalog"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/kafkaconf"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// Deps are the ingester's collaborators.
type Deps struct {
	Catalog *lake.Catalog
	// Layout names the raw tables (built from the same Config).
	Layout *lake.Layout
	// Codecs are the compiled schemas events are checked against (a
	// schema.Resolver following the registry).
	Codecs schema.Codecs
	// KafkaOpts connect to the cluster (seed brokers, client id, TLS...).
	KafkaOpts []kgo.Opt
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	// Now is the clock for ingest timestamps and flush timing.
	Now func() time.Time
	// Failpoints stop the process at protocol points in crash tests.
	Failpoints *failpoint.Set
	// Tracer records a span per batch and per table commit (nil: none).
	Tracer trace.TracerProvider
}

// Ingester consumes the configured topics into their raw tables.
type Ingester struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics

	topics    map[string]*topicState
	dlq       *tableWriter
	enc       *encoder
	alloc     *countingAllocator // the batch's builders and writers
	dec       *schema.Decoder
	ev        schema.Event
	fileOpts  lake.FileOptions
	dd        *dedupe.Set
	committer *lake.Committer

	// mu serializes the consume loop and the rebalance callbacks, which
	// franz-go runs on its own goroutine.
	mu sync.Mutex
	cl *kgo.Client
	b  batch
	// base is what this process believes each table stores for the
	// partitions it owns: the fence that every commit checks.
	baseDLQ lake.Offsets
	// assigned is the set of partitions this member owns.
	assigned map[string]map[int32]bool

	// consuming is set while the consumer runs (tables open, group
	// joined); Ready (health.go) reports it with the rest.
	consuming atomic.Bool
	brokers   *kafkaconf.Reachability // fed by the client's hooks
	faults    faults                  // the dependency that paused ingest
	progress  *health.Committer       // consumed records wait for a commit
	lagt      *lagTracker

	rec         *recoveryMetrics // recover.go
	bt          batchTrace       // trace.go
	consecutive int              // failures since consumption last resumed (loop goroutine only)
}

// topicState is one topic's raw table and its batch state.
type topicState struct {
	topic string
	w     *tableWriter
	base  lake.Offsets // stored raw offsets for owned partitions
	dirty lake.Offsets // offsets consumed since the last raw commit
}

// batch is what has been consumed since the last commit.
type batch struct {
	started time.Time
	records int
	bytes   int64
	end     lake.Offsets          // next offset per partition consumed in this batch
	dlqRows []dlqRow              // rejected messages, kept for the optional DLQ topic
	reasons map[schema.Reason]int // rejected messages by reason, counted once committed
}

func (b *batch) reset() { *b = batch{end: lake.Offsets{}, reasons: map[schema.Reason]int{}} }

// New builds an ingester; Run starts it.
func New(cfg Config, deps Deps) (*Ingester, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("ingest: a catalog is required")
	}
	if deps.Codecs == nil {
		return nil, errors.New("ingest: schemas (codecs) are required")
	}
	if deps.Layout == nil {
		l, err := cfg.Layout()
		if err != nil {
			return nil, err
		}
		deps.Layout = l
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	ing := &Ingester{
		alloc:    newCountingAllocator(memory.DefaultAllocator),
		cfg:      cfg,
		deps:     deps,
		log:      deps.Logger.With(logkey.Component, "ingest"),
		m:        newMetrics(deps.Registry),
		rec:      newRecoveryMetrics(deps.Registry),
		topics:   map[string]*topicState{},
		dec:      schema.NewDecoder(cfg.Contract, deps.Codecs),
		dd:       dedupe.New(int64(cfg.DedupeWindow)),
		baseDLQ:  lake.Offsets{},
		assigned: map[string]map[int32]bool{},
		brokers:  kafkaconf.NewReachability(0, deps.Now),
		lagt:     newLagTracker(deps.Now),
		// A batch is committed FlushInterval after its first record, each
		// attempt bounded by CommitTimeout; one more interval of margin.
		progress: health.NewCommitter("ingest committer", 2*cfg.FlushInterval+cfg.CommitTimeout, deps.Now),
	}
	ing.m.state.brokers = ing.brokers.Check
	deps.Registry.MustRegister(ing.lagt)
	ing.committer = lake.NewCommitter(deps.Catalog, lake.CommitConfig{
		Writer:   lake.WriterName("ingest"),
		RetryMax: cfg.CommitRetryMax,
		// An answer that never comes is an unknown outcome, looked up by
		// commit id (recover.go).
		AttemptTimeout: cfg.CommitTimeout,
	}, lake.CommitHooks{
		Conflict: func(t string) { ing.m.conflicts.WithLabelValues(t).Inc() },
		Error:    func(t string, _ error) { ing.m.commitErrors.WithLabelValues(t).Inc() },
		Fenced:   func(string) { ing.m.fenced.Inc() },
		Retrying: func(on bool) {
			if on {
				ing.m.setState(stateRetrying)
			} else {
				ing.m.setState(stateCommitting)
			}
		},
	}, ing.log, deps.Failpoints)
	ing.b.reset()
	ing.bt.tracer = tracing.Or(deps.Tracer).Tracer("github.com/eventlake/eventlake/ingest")
	return ing, nil
}

// Run consumes until ctx is canceled, then flushes and commits what it holds
// (bounded by ShutdownTimeout) and leaves the group.
func (ing *Ingester) Run(ctx context.Context) error {
	ing.enc = newEncoder(2, 2) // before the tables: their writers use it
	if err := ing.openTablesRetrying(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // shut down while starting: nothing was consumed
		}
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range ing.enc.workers {
		g.Go(func() error { ing.enc.run(i); return nil })
	}
	g.Go(func() error {
		defer ing.enc.close()
		return ing.consume(gctx)
	})
	return g.Wait()
}

func (ing *Ingester) openTables(ctx context.Context) error {
	ing.fileOpts = ing.cfg.fileOptions()
	// Explicitly mapped topics get their writers now (their tables are
	// created on their first event, like those taken by pattern).
	for _, tt := range ing.deps.Layout.Topics() {
		if _, err := ing.topic(ctx, tt.Topic); err != nil {
			return err
		}
	}
	tbl, err := ing.deps.Catalog.EnsureTable(ctx, lake.DLQTableDef(ing.cfg.DLQTable))
	if err != nil {
		return err
	}
	ing.dlq, err = newDLQWriter(ing.cfg.DLQTable, ing.deps.Catalog, tbl, ing.fileOpts, ing.alloc, ing.enc)
	return err
}

// fileOptions is the Parquet layout of the files ingest (and a DLQ
// replay) writes; each table writer adds its bloom filter columns.
func (c Config) fileOptions() lake.FileOptions {
	return lake.EventFileOptions(c.RowGroupRows)
}

// topic returns the state of a topic eventlake takes, creating it (and
// loading its table, if it exists) the first time; nil for a topic the
// layout does not take.
func (ing *Ingester) topic(ctx context.Context, topic string) (*topicState, error) {
	if ts := ing.topics[topic]; ts != nil {
		return ts, nil
	}
	name, ok := ing.deps.Layout.TableFor(topic)
	if !ok {
		return nil, nil
	}
	tbl, err := ing.deps.Catalog.LoadTable(ctx, name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		tbl, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := lake.CheckTopic(tbl, topic); err != nil {
		if ing.deps.Layout.Explicit(topic) {
			return nil, err
		}
		ing.log.Error("topic not taken", logkey.Topic, topic, logkey.Err, err)
		return nil, nil
	}
	w, err := newRawWriter(name, topic, ing.deps.Catalog, tbl, ing.fileOpts, ing.alloc, ing.enc)
	if err != nil {
		return nil, err
	}
	ts := &topicState{topic: topic, w: w, base: lake.Offsets{}, dirty: lake.Offsets{}}
	ing.topics[topic] = ts
	return ts, nil
}

// subscription are the consumer options that select the topics: the
// explicit ones, and with a pattern every matching topic, found again
// every TopicRefresh.
func (ing *Ingester) subscription() []kgo.Opt {
	var names []string
	for _, t := range ing.deps.Layout.Topics() {
		names = append(names, t.Topic)
	}
	re := ing.deps.Layout.Pattern()
	if re == nil {
		return []kgo.Opt{kgo.ConsumeTopics(names...)}
	}
	patterns := []string{re.String()}
	for _, n := range names {
		patterns = append(patterns, "^"+regexp.QuoteMeta(n)+"$")
	}
	excl := []string{"^_.*"}
	for _, t := range ing.cfg.ExcludeTopics {
		excl = append(excl, "^"+regexp.QuoteMeta(t)+"$")
	}
	return []kgo.Opt{kgo.ConsumeRegex(), kgo.ConsumeTopics(patterns...), kgo.ConsumeExcludeTopics(excl...),
		kgo.MetadataMaxAge(ing.cfg.TopicRefresh), kgo.MetadataMinAge(min(ing.cfg.TopicRefresh, time.Second))}
}

func (ing *Ingester) topicNames() []string {
	var ts []string
	for t := range ing.topics {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

func (ing *Ingester) consume(ctx context.Context) error {
	// The client's own context outlives ctx (the final flush and the
	// leave still talk to Kafka) and is canceled by leave.
	kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer kcancel()
	opts := append([]kgo.Opt{}, ing.deps.KafkaOpts...)
	opts = append(opts,
		kgo.WithContext(kctx),
		kgo.ConsumerGroup(ing.cfg.Group),
		kgo.SessionTimeout(ing.cfg.SessionTimeout),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(ing.cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(max(ing.cfg.FetchMaxBytes/4, int32(ing.cfg.Contract.MaxMessageBytes)+1<<10)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(ing.adjustOffsets),
		kgo.OnPartitionsAssigned(ing.onAssigned),
		kgo.OnPartitionsRevoked(ing.onRevoked),
		kgo.OnPartitionsLost(ing.onLost),
		ing.brokers.Opt(),
	)
	opts = append(opts, ing.subscription()...)
	if ing.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(ing.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create kafka consumer: %w", err)
	}
	ing.mu.Lock()
	ing.cl = cl
	ing.mu.Unlock()
	ing.m.setState(stateConsuming)
	ing.consuming.Store(true)
	defer ing.consuming.Store(false)
	ing.log.Info("ingest started", logkey.Group, ing.cfg.Group, "topics", ing.topicNames(), "topic_pattern", ing.cfg.TopicPattern, "dlq_table", ing.cfg.DLQTable)

	runErr := ing.loop(ctx, cl)
	ing.consuming.Store(false) // draining from here on

	// Drain in order: flush and commit what is held, then leave the group
	// (which runs onRevoked with an empty batch). A second signal cancels
	// the parent of this context only through process exit.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ing.cfg.ShutdownTimeout)
	defer cancel()
	ing.mu.Lock()
	ferr := ing.flushLocked(sctx)
	ing.mu.Unlock()
	if ferr != nil {
		ing.log.Error("final flush failed; uncommitted records will be re-read on restart", logkey.Err, ferr)
	} else {
		ing.log.Info("final flush committed")
	}
	ing.leave(sctx, cl, kcancel)
	if runErr != nil {
		return runErr
	}
	return ferr
}

func (ing *Ingester) loop(ctx context.Context, cl *kgo.Client) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		pollCtx, cancel := context.WithDeadline(ctx, ing.nextFlushDeadline())
		fetches := cl.PollRecords(pollCtx, 50_000)
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		ing.mu.Lock()
		err := ing.handle(ctx, fetches)
		if err == nil && ing.flushDue() {
			if err = ing.flushLocked(ctx); err == nil {
				ing.healthy()
			}
		}
		if err == nil && ing.b.records == 0 && !ing.lagt.pending() {
			ing.progress.Idle() // nothing consumed waits (partitions moved away)
		}
		ing.m.openPartitions.Set(float64(ing.openPartitions()))
		ing.m.batchMemory.Set(float64(ing.batchHeld()))
		ing.mu.Unlock()
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Pause, back off and resume from the lake's offsets instead of
			// exiting (recover.go).
			if err := ing.recover(ctx, cl, err); err != nil {
				return err
			}
		}
	}
}

func (ing *Ingester) nextFlushDeadline() time.Time {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if ing.b.records == 0 {
		return ing.deps.Now().Add(ing.cfg.FlushInterval)
	}
	return ing.b.started.Add(ing.cfg.FlushInterval)
}

func (ing *Ingester) flushDue() bool {
	b := &ing.b
	if b.records == 0 {
		return false
	}
	return b.records >= ing.cfg.FlushRows || b.bytes >= ing.cfg.FlushBytes ||
		!ing.deps.Now().Before(b.started.Add(ing.cfg.FlushInterval))
}

// handle decodes and routes one poll's records. Called with mu held.
func (ing *Ingester) handle(ctx context.Context, fetches kgo.Fetches) error {
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		ing.log.Warn("fetch error", logkey.Topic, fe.Topic, logkey.Partition, fe.Partition, logkey.Err, fe.Err)
	}
	nowMicros := ing.deps.Now().UnixMicro()
	var err error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		ts := ing.topics[p.Topic]
		if ts == nil || !ing.assigned[p.Topic][p.Partition] {
			return // not assigned (any more), or not a topic eventlake takes
		}
		// Offset bookkeeping is per partition, not per record.
		var f fence
		f.raw, f.hasRaw = ts.base.Get(p.Topic, p.Partition)
		f.dlq, f.hasDLQ = ing.baseDLQ.Get(p.Topic, p.Partition)
		if ing.b.records == 0 {
			ing.b.started = ing.deps.Now()
		}
		fresh := ing.b.records
		for i, r := range p.Records {
			if err = ing.add(ctx, ts, r, nowMicros, &f); err != nil {
				return
			}
			if i%memoryCheckEvery == memoryCheckEvery-1 {
				ing.keepWithinBudget()
			}
		}
		ing.keepWithinBudget()
		last := p.Records[len(p.Records)-1].Offset
		if !f.hasRaw || last >= f.raw { // not only warm-up records
			ing.b.end.Set(p.Topic, p.Partition, last+1)
			ts.dirty.Set(p.Topic, p.Partition, last+1)
			// The oldest record not in the lake: the first one past the
			// warm-up records (read again after a rewind only).
			for _, r := range p.Records {
				if !f.hasRaw || r.Offset >= f.raw {
					ing.lagt.consumed(p.Topic, p.Partition, r.Timestamp.UnixMicro())
					break
				}
			}
		}
		if ing.b.records > fresh {
			ing.progress.Pending(ing.b.started)
		}
		ing.m.consumed.WithLabelValues(p.Topic).Add(float64(ing.b.records - fresh))
		ing.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
	})
	return err
}

// undecided is the error of a record whose schema the registry could not
// be asked about: neither a row nor a dead letter, so the batch is dropped
// and re-read once the registry answers (recover.go).
func undecided(r *kgo.Record, derr *schema.Error) error {
	return fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, derr)
}

// fence is what the lake already holds for one partition: records below
// these offsets are skipped (a replay after a crash).
type fence struct {
	raw, dlq       int64
	hasRaw, hasDLQ bool
}

func (ing *Ingester) add(ctx context.Context, ts *topicState, r *kgo.Record, nowMicros int64, f *fence) error {
	recTs := r.Timestamp.UnixMicro()
	if f.hasRaw && r.Offset < f.raw {
		// Already in the lake: read again only to warm the dedupe window
		// (consumption starts dedupe_window offsets early).
		derr := ing.dec.Decode(r.Value, recTs, &ing.ev)
		if derr == nil {
			ing.dd.Seen(dedupe.Key{Topic: r.Topic, Partition: r.Partition}, r.Offset, ing.ev.EventID)
		} else if derr.Unavailable != nil {
			return undecided(r, derr)
		}
		return nil
	}
	b := &ing.b
	b.records++
	b.bytes += int64(len(r.Value))
	if b.records == 1 {
		ing.startBatchTrace(ctx)
	}

	derr := ing.dec.Decode(r.Value, recTs, &ing.ev)
	if derr != nil && derr.Unavailable != nil {
		return undecided(r, derr)
	}
	if derr == nil && !ing.dd.Seen(dedupe.Key{Topic: r.Topic, Partition: r.Partition}, r.Offset, ing.ev.EventID) {
		err := ts.w.prepare(ctx, ing.ev.Version, ing.deps.Codecs)
		if err == nil {
			k := schema.Coords{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, KafkaTs: recTs, Ingested: nowMicros}
			if err := ts.w.addEvent(ctx, &ing.ev, &k); err != nil {
				return &storageError{err}
			}
			ing.traceEvent(&ing.ev)
			return nil
		}
		conflict := new(errConflict)
		if !errors.As(err, &conflict) {
			return err
		}
		derr = conflictError(ing.ev.Version, conflict)
	} else if derr == nil {
		ing.m.duplicates.WithLabelValues(r.Topic).Inc()
		ing.logEvent(ctx, "duplicate event dropped", r, &ing.ev)
		return nil
	}
	if f.hasDLQ && r.Offset < f.dlq {
		return nil // already in the dead-letter table (a replay after a crash)
	}
	row := dlqRow{
		raw: r.Value, isNull: r.Value == nil, reason: derr.Reason, detail: derr.Detail,
		subject: derr.Subject, version: derr.Version, pointer: derr.Pointer,
		topic: r.Topic, partition: r.Partition, offset: r.Offset, kafkaTs: recTs,
		key: r.Key, ingested: nowMicros,
	}
	b.reasons[derr.Reason]++
	ing.logEvent(ctx, "event dead-lettered", r, &ing.ev, slog.String(logkey.Reason, string(derr.Reason)))
	if ing.cfg.DLQTopic != "" {
		b.dlqRows = append(b.dlqRows, row)
	}
	if err := ing.dlq.addDLQ(ctx, &row); err != nil {
		return &storageError{err}
	}
	return nil
}

// conflictError is the dead-letter reason of an event of version v whose
// columns its table types differently.
func conflictError(v *schema.TypeVersion, err error) *schema.Error {
	return &schema.Error{Reason: schema.ReasonSchemaConflict, Subject: v.Subject, Version: v.Version,
		Detail: err.Error() + "; the event's type shares a topic with a type that types the column differently"}
}

// openPartitions counts the table partitions with an open file. Called
// with mu held.
func (ing *Ingester) openPartitions() int {
	n := len(ing.dlq.parts) + len(ing.dlq.sealed)
	for _, ts := range ing.topics {
		n += len(ts.w.parts) + len(ts.w.sealed)
	}
	return n
}
