package streamer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/hot"
	"github.com/eventlake/eventlake/internal/kafkaconf"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
)

// Deps are the streamer's collaborators.
type Deps struct {
	Catalog   *lake.Catalog
	KafkaOpts []kgo.Opt
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
	// Layout names the raw tables ingest writes; their fresh rows (after
	// the offsets the tables store) are handed to Sink.
	Layout *lake.Layout
	// Inputs say which events and columns the windows and the enrichment
	// read.
	Inputs lake.ModelInputs
	// Models are the declared read models the hot tier maintains (and,
	// with Config.Commit, commits).
	Models []*readmodel.Model
	// Sessions, when set, are kept by the hot tier and, with
	// Config.Commit, committed to their table; models among Models over
	// that table are fed the sessions it commits.
	Sessions *Sessions
	// Contract, Codecs and DedupeWindow must be ingest's, so that the hot
	// tier accepts and drops exactly the events ingest does.
	Contract     schema.Contract
	Codecs       schema.Codecs
	DedupeWindow int64
	// Sink receives fresh raw rows; nil to skip them.
	Sink hot.Sink
	// Failpoints stop the process at protocol points in crash tests.
	Failpoints *failpoint.Set
	// Tracer records a span per update of the hot tier and per read-model
	// commit (nil: none).
	Tracer trace.TracerProvider
}

// Streamer is the hot tier; see the package comment.
//
// It is split by job, each with its own lock, so that no one lock guards
// everything: one goroutine reads Kafka (consume) and works out, without
// any lock, what each record brings to each job; it then applies that to
// each job under the job's lock, a chunk of records at a time. The jobs:
//   - the fresh raw rows handed to the query service (the sinks, owned by
//     the consuming goroutine; srcMu guards which topics have one);
//   - the live job: event-time windows, the product catalog and the
//     enrichment of orders (liveMu);
//   - read-model maintenance, a writer stage like ingest: every declared
//     model has its own lock (model.mu), as have the sessions
//     (sessState.mu); maintain commits them. An answer of one model waits
//     only for that model's lock, held for one chunk of records at most.
//
// Lock order, where two are held: a model's or the sessions' lock before
// pauseMu; the sessions' before a model's.
type Streamer struct {
	cfg  Config
	deps Deps
	in   lake.ModelInputs
	log  *slog.Logger
	m    *metrics
	hubs map[string]*hub // per model, fixed at New
	// push coalesces live updates. Updates of a model are added with the
	// model's lock held, so that they reach it in the order their figures
	// were read (the latest wins).
	push *coalescer

	committer *lake.Committer
	tracer    trace.Tracer // trace.go

	// Owned by the consuming goroutine (and bootstrap before it starts).
	dec *schema.Decoder
	ev  schema.Event
	dd  *dedupe.Set
	// Column indexes of the inputs, per schema version.
	orderCols map[*schema.TypeVersion]orderCols
	chunk     chunk // scratch of consume

	cl    *kgo.Client
	ready atomic.Bool

	// The sources: which topics have a raw sink, and which the declared
	// models count. Written by bootstrap and discover, read by consume.
	srcMu sync.Mutex
	raw   map[string]*rawSink // topic -> its raw table's fresh rows
	// modelTopics are the topics whose events the declared models count.
	modelTopics map[string]bool

	// The live job.
	liveMu   sync.Mutex
	win      *windows
	closed   map[string][]WindowResult // recently closed windows per spec
	products map[string]product
	// liveWm is the windows' watermark (noWatermark: none yet), for
	// readers without liveMu.
	liveWm  atomic.Int64
	publish bool // enriched orders are published (set at bootstrap)

	// Read-model maintenance. models, byType and live are fixed at New.
	models []*model
	byType map[string][]*model // event type -> the models that count it
	// live is order_revenue_minute when declared: its changes are pushed
	// (SSE) and its offsets say which orders the windows and the
	// enrichment have seen.
	live *model
	sess *sessState // nil: sessions are not kept here
	// hot counts the events the models and the sessions hold until
	// committed (max_hot_events).
	hot     atomic.Int64
	pauseMu sync.Mutex
	paused  bool
	// pausedTopics are the topics paused at max_hot_events.
	pausedTopics []string
	// modelRecords counts the records of the topics declared models
	// count (those paused at max_hot_events) that polls returned. Added
	// to by the poll loop only; the pause and resume lines report it, the
	// same at a resume as at its pause since nothing is read in between.
	modelRecords atomic.Int64
	// Read-model commit failures in a row (maintain only).
	commitFails int

	progress *health.Committer       // the read-model committer (with Commit)
	brokers  *kafkaconf.Reachability // fed by every Kafka client's hooks
}

// noWatermark is liveWm before the windows have one.
const noWatermark = math.MinInt64

// watermark is the windows' watermark, read without liveMu.
func (s *Streamer) watermark() (int64, bool) {
	wm := s.liveWm.Load()
	return wm, wm != noWatermark
}

// setWatermark publishes the windows' watermark. Called with liveMu held.
func (s *Streamer) setWatermark() {
	if wm, ok := s.win.watermark(); ok {
		s.liveWm.Store(wm)
	}
}

// orderCols are the input columns of one order schema version (-1:
// absent: the version's orders are not counted).
type orderCols struct{ key, amount, user, product, quantity, scale int }

// New builds a streamer; Run starts it.
func New(cfg Config, deps Deps) (*Streamer, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("streamer: a catalog is required")
	}
	if deps.Codecs == nil || deps.Layout == nil {
		return nil, errors.New("streamer: schemas (codecs) and the layout are required")
	}
	deps.Inputs.Defaults()
	if err := deps.Inputs.Validate(); err != nil {
		return nil, err
	}
	deps.Contract.Defaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Streamer{
		cfg: cfg, deps: deps, in: deps.Inputs,
		log:         deps.Logger.With(logkey.Component, "streamer"),
		m:           newMetrics(deps.Registry),
		dec:         schema.NewDecoder(deps.Contract, deps.Codecs),
		dd:          dedupe.New(deps.DedupeWindow),
		orderCols:   map[*schema.TypeVersion]orderCols{},
		byType:      map[string][]*model{},
		raw:         map[string]*rawSink{},
		modelTopics: map[string]bool{},
		closed:      map[string][]WindowResult{},
		products:    map[string]product{},
		tracer:      tracing.Or(deps.Tracer).Tracer(tracerName),
	}
	// A commit every CommitInterval, each retried at the next one: work
	// waiting for two intervals and half a minute is stuck.
	s.progress = health.NewCommitter("read-model committer", 2*cfg.CommitInterval+30*time.Second, deps.Now)
	s.brokers = kafkaconf.NewReachability(0, deps.Now)
	s.deps.KafkaOpts = append(slices.Clip(deps.KafkaOpts), s.brokers.Opt())
	if c := deps.Sessions; c != nil && !c.Off && cfg.Commit {
		ss, err := newSessState(c, deps.Registry)
		if err != nil {
			return nil, err
		}
		s.sess = ss
	}
	s.liveWm.Store(noWatermark)
	for _, m := range deps.Models {
		md := newModel(m)
		md.idx = len(s.models)
		s.models = append(s.models, md)
		if m.Table != "" {
			if s.sess != nil && m.Table == s.sess.Table {
				s.sess.derived = append(s.sess.derived, md)
			}
			continue // fed rows of its table, not events
		}
		s.byType[m.Type] = append(s.byType[m.Type], md)
		if m.Name == lake.TableOrderRevenueMinute {
			s.live = md
		}
	}
	// A hub per model: each stream numbers its own updates (Last-Event-ID)
	// and keeps its own recent ones.
	s.hubs = map[string]*hub{}
	for _, md := range s.models {
		s.hubs[md.name] = newHub(cfg.SSEBuffer, s.m.sseDropped.Inc)
	}
	s.push = newCoalescer(s.publishUpdates, cfg.Stream.coalesce(), func(n int) { s.m.sseCoalesced.Add(float64(n)) })
	s.win = newWindows(DefaultWindows(), cfg.AllowedLateness, cfg.IdleTimeout, deps.Now)
	s.committer = lake.NewCommitter(deps.Catalog, lake.CommitConfig{
		Writer: lake.WriterName("streamer"),
	}, lake.CommitHooks{
		Conflict: func(t string) { s.m.conflicts.WithLabelValues(t).Inc() },
		Error:    func(t string, _ error) { s.m.commitErrors.WithLabelValues(t).Inc() },
	}, s.log, deps.Failpoints)
	return s, nil
}

// publishUpdates hands updates to their models' hubs.
func (s *Streamer) publishUpdates(us []Update) {
	for i := 0; i < len(us); {
		j := i + 1
		for j < len(us) && us[j].Model == us[i].Model {
			j++
		}
		if h := s.hubs[us[i].Model]; h != nil {
			h.publish(us[i:j])
		}
		i = j
	}
}

// Ready reports whether the hot tier has loaded the read models and
// started reading.
func (s *Streamer) Ready() bool { return s.ready.Load() }

// Run reads until ctx ends. With Commit set it commits read models every
// CommitInterval and once more on shutdown. Live updates are sent every
// stream.coalesce, and what is pending once more on shutdown.
func (s *Streamer) Run(ctx context.Context) error {
	starts, err := s.bootstrap(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	opts := append([]kgo.Opt{}, s.deps.KafkaOpts...)
	opts = append(opts,
		kgo.ConsumePartitions(starts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(8<<20),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create hot-tier kafka client: %w", err)
	}
	s.cl = cl
	s.ready.Store(true)
	s.log.Info("hot tier started", "commit_read_models", s.cfg.Commit)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.consume(gctx) })
	g.Go(func() error { return s.maintain(gctx) })
	g.Go(func() error { return s.push.run(gctx) })
	err = g.Wait()
	// The flusher flushed when it stopped, but consume or maintain may
	// have added updates after that, before they returned.
	s.push.flush(true)
	if s.cfg.Commit {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if _, cerr := s.commitReadModels(sctx); cerr != nil {
			s.log.Warn("final read-model commit failed; the next start re-reads the events", logkey.Err, cerr)
		}
		cancel()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = cl.Flush(fctx)
		cancel()
	}
	cl.Close()
	return err
}

// bootstrap creates or loads the read models, opens the raw tables' fresh
// rows and works out where to start reading every partition.
func (s *Streamer) bootstrap(ctx context.Context) (map[string]map[int32]kgo.Offset, error) {
	if s.sess != nil {
		if err := s.bootstrapSessions(ctx); err != nil {
			return nil, err
		}
	}
	for _, md := range s.models {
		if err := s.bootstrapModel(ctx, md); err != nil {
			return nil, err
		}
	}
	if s.sess != nil {
		for _, md := range s.sess.derived {
			if err := s.feedDerived(ctx, md); err != nil {
				return nil, err
			}
		}
	}

	admCl, err := kgo.NewClient(s.deps.KafkaOpts...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	var md kadm.Metadata
	for {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		md, err = adm.Metadata(mctx) // every topic: the layout may take them by pattern
		cancel()
		if err == nil {
			break
		}
		s.log.Warn("read topic metadata, retrying", logkey.Err, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	// Enriched orders go to a topic that must exist: producing to a missing
	// one would fill the producer's buffer and stall the hot tier.
	if s.cfg.Commit {
		if td, ok := md.Topics[s.cfg.EnrichedTopic]; !ok || td.Err != nil {
			s.log.Warn("enriched-orders topic not found; enriched orders are not published (create it to enable them)",
				logkey.Topic, s.cfg.EnrichedTopic)
			s.publish = false
		} else {
			s.publish = true
		}
	}
	// The product catalog first, to its end, so that orders read from now
	// on are enriched with it.
	catalogEnd, err := s.loadCatalog(ctx, adm, md)
	if err != nil {
		return nil, err
	}
	starts := map[string]map[int32]kgo.Offset{}
	if td, ok := md.Topics[s.cfg.ProductsTopic]; ok && td.Err == nil {
		starts[s.cfg.ProductsTopic] = map[int32]kgo.Offset{}
		for p := range td.Partitions {
			starts[s.cfg.ProductsTopic][p] = kgo.NewOffset().At(catalogEnd[p]).WithEpoch(-1)
		}
	}
	for topic, td := range md.Topics {
		if td.Err != nil || topic == s.cfg.ProductsTopic {
			continue
		}
		parts := make([]int32, 0, len(td.Partitions))
		for p := range td.Partitions {
			parts = append(parts, p)
		}
		st, err := s.startOffsets(ctx, topic, parts)
		if err != nil {
			return nil, err
		}
		if st != nil {
			starts[topic] = st
		}
	}
	if s.sess != nil {
		if err := s.initSessionsClock(ctx, adm, starts); err != nil {
			return nil, err
		}
	}
	if _, ok := starts[s.in.Orders.Topic]; !ok {
		s.log.Warn("topic not found; the hot tier does not read it", logkey.Topic, s.in.Orders.Topic)
	}
	if len(starts) == 0 {
		return nil, fmt.Errorf("none of the topics eventlake reads exists (%s, or any the layout takes)", s.in.Orders.Topic)
	}
	return starts, nil
}

// startOffsets opens what the hot tier keeps of topic (its raw table's
// fresh rows, the read models it feeds) and returns where to start
// reading each partition: the lowest offset any of them needs, minus the
// dedupe window (read again only to decide duplicates alike). nil: the
// hot tier does not read the topic.
func (s *Streamer) startOffsets(ctx context.Context, topic string, parts []int32) (map[int32]kgo.Offset, error) {
	table, taken := s.deps.Layout.TableFor(topic)
	raw := taken && s.deps.Sink != nil
	// Declared models count the events ingest stores: those of the
	// topics the layout takes.
	models := taken && (len(s.models) > 0 || s.sess != nil)
	model := topic == s.in.Orders.Topic || models
	if !raw && !model {
		return nil, nil
	}
	var sink *rawSink
	if raw {
		var err error
		if sink, err = s.newRawSink(ctx, topic, table); err != nil {
			return nil, err
		}
	}
	s.srcMu.Lock()
	if sink != nil {
		s.raw[topic] = sink
	}
	if models {
		s.modelTopics[topic] = true
	}
	s.srcMu.Unlock()
	out := map[int32]kgo.Offset{}
	window := s.dd.Window()
	for _, p := range parts {
		var need []int64
		if sink != nil {
			o, _ := sink.offsets.Get(topic, p)
			need = append(need, o)
		}
		for _, md := range s.models {
			if models && md.m.Table == "" {
				md.mu.RLock()
				o, _ := md.offsets.Get(topic, p)
				md.mu.RUnlock()
				need = append(need, o)
			}
		}
		if models && s.sess != nil {
			s.sess.mu.Lock()
			o, _ := s.sess.offsets.Get(topic, p)
			s.sess.mu.Unlock()
			need = append(need, o)
		}
		if topic == s.in.Orders.Topic && s.live == nil && sink == nil {
			need = append(need, 0)
		}
		out[p] = kgo.NewOffset().At(max(0, slices.Min(need)-window)).WithEpoch(-1)
	}
	return out, nil
}

// discover adds topics created since the hot tier started that the layout
// takes (their raw tables' fresh rows), so that SQL over a new topic's
// table sees events before ingest commits them.
func (s *Streamer) discover(ctx context.Context) error {
	if s.deps.Layout.Pattern() == nil || s.cl == nil {
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(s.cl).Metadata(mctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	add := map[string]map[int32]kgo.Offset{}
	for topic, td := range md.Topics {
		s.srcMu.Lock()
		_, known := s.raw[topic]
		s.srcMu.Unlock()
		if known || td.Err != nil || topic == s.cfg.ProductsTopic || topic == s.in.Orders.Topic {
			continue
		}
		var parts []int32
		for p := range td.Partitions {
			parts = append(parts, p)
		}
		st, err := s.startOffsets(ctx, topic, parts)
		if err != nil {
			return err
		}
		if st != nil {
			add[topic] = st
			s.log.Info("new topic: the hot tier reads it", logkey.Topic, topic)
		}
	}
	if len(add) > 0 {
		s.cl.AddConsumePartitions(add)
	}
	return nil
}

// waitUndecided pauses the hot tier before it reads again records it
// could not decide because the schema registry did not answer: it logs
// the first of a run, then backs off up to 5s. It returns false when ctx
// ends.
func waitUndecided(ctx context.Context, log *slog.Logger, err error, n *int) bool {
	if *n == 0 {
		log.Warn("schema registry unavailable: waiting to decode records of a type or schema id not loaded", logkey.Err, err)
	}
	*n++
	d := min(100*time.Millisecond<<min(*n-1, 6), 5*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

type sinkRecord struct {
	table string
	rec   arrow.RecordBatch
}

// orderColsOf resolves the order inputs in a schema version, once.
// Called with mu held.
func (s *Streamer) orderColsOf(v *schema.TypeVersion) orderCols {
	if c, ok := s.orderCols[v]; ok {
		return c
	}
	c := orderCols{key: v.Column(s.in.Orders.Key), amount: v.Column(s.in.Orders.Amount),
		user: v.Column(s.in.Orders.User), product: v.Column(s.in.Orders.Product), quantity: v.Column(s.in.Orders.Quantity), scale: -1}
	if c.amount >= 0 {
		if d, ok := v.Columns[c.amount].Type.(iceberg.DecimalType); ok && d.Scale() <= 2 {
			c.scale = d.Scale()
		}
	}
	if c.scale < 0 {
		s.log.Warn("orders of this schema version are not counted: its amount column is not a decimal with at most 2 decimal places",
			"subject", v.Subject, "version", v.Version, "column", s.in.Orders.Amount)
	}
	s.orderCols[v] = c
	return c
}

// decimalAt reads a decimal column as cents.
func decimalAt(ev *schema.Event, col, scale int) (decimal128.Num, bool) {
	if scale < 0 {
		return decimal128.Num{}, false
	}
	d, ok := ev.Decimal(col)
	if !ok {
		return d, false
	}
	if scale < 2 {
		d = d.IncreaseScaleBy(int32(2 - scale))
	}
	return d, true
}

// loadCatalog reads the product changelog from its start to its current
// end and returns the end offsets.
func (s *Streamer) loadCatalog(ctx context.Context, adm *kadm.Client, md kadm.Metadata) (map[int32]int64, error) {
	end := map[int32]int64{}
	td, ok := md.Topics[s.cfg.ProductsTopic]
	if !ok || td.Err != nil {
		return end, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(lctx, s.cfg.ProductsTopic)
	if err != nil {
		return nil, fmt.Errorf("read the end of %s: %w", s.cfg.ProductsTopic, err)
	}
	parts := map[int32]kgo.Offset{}
	remaining := 0
	offs.Each(func(o kadm.ListedOffset) {
		end[o.Partition] = o.Offset
		if o.Offset > 0 {
			parts[o.Partition] = kgo.NewOffset().AtStart()
			remaining++
		}
	})
	if remaining == 0 {
		return end, nil
	}
	opts := append([]kgo.Opt{}, s.deps.KafkaOpts...)
	opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.ProductsTopic: parts}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	done := map[int32]bool{}
	for len(done) < remaining {
		fetches := cl.PollFetches(lctx)
		if lctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// A changelog whose last offsets hold no record (compaction,
			// transaction markers) is read by the main consumer anyway.
			s.log.Warn("product catalog not read to its end in 30s; continuing", logkey.Topic, s.cfg.ProductsTopic)
			break
		}
		s.liveMu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset < end[r.Partition] {
				s.applyProduct(r)
			}
			if r.Offset+1 >= end[r.Partition] {
				done[r.Partition] = true
			}
		})
		s.m.products.Set(float64(len(s.products)))
		s.liveMu.Unlock()
	}
	s.log.Info("product catalog loaded", "products", len(s.products))
	return end, nil
}
