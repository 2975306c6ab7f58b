package streamer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/zeebo/xxh3"
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
type Streamer struct {
	cfg  Config
	deps Deps
	in   lake.ModelInputs
	log  *slog.Logger
	m    *metrics
	hubs map[string]*hub // per model, fixed at New
	push *coalescer      // in front of hub; updates are added with mu held

	committer *lake.Committer
	tracer    trace.Tracer // trace.go
	dec       *schema.Decoder
	ev        schema.Event
	dd        *dedupe.Set
	// Column indexes of the inputs, per schema version.
	orderCols map[*schema.TypeVersion]orderCols

	cl *kgo.Client

	mu     sync.RWMutex // guards everything below
	ready  bool
	models []*model
	byType map[string][]*model // event type -> the models that count it
	// live is order_revenue_minute when declared: its changes are pushed
	// (SSE) and its offsets say which orders the windows and the
	// enrichment have seen.
	live *model
	sess *sessState                 // nil: sessions are not kept here
	high map[string]map[int32]int64 // next offset read
	raw  map[string]*rawSink        // topic -> its raw table's fresh rows
	// modelTopics are the topics whose events the declared models count.
	modelTopics map[string]bool
	hotCount    int
	win         *windows
	closed      map[string][]WindowResult // recently closed windows per spec
	products    map[string]product
	paused      bool
	// pausedTopics are the topics paused at max_hot_events.
	pausedTopics []string
	publish      bool // enriched orders are published (committer, topic exists)
	// Read-model commit failures in a row.
	commitFails int

	progress *health.Committer       // the read-model committer (with Commit)
	brokers  *kafkaconf.Reachability // fed by every Kafka client's hooks
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
		high:        map[string]map[int32]int64{},
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
	for _, m := range deps.Models {
		md := newModel(m)
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
func (s *Streamer) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

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
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if sink != nil {
		s.raw[topic] = sink
	}
	if models {
		s.modelTopics[topic] = true
	}
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
				o, _ := md.offsets.Get(topic, p)
				need = append(need, o)
			}
		}
		if models && s.sess != nil {
			o, _ := s.sess.offsets.Get(topic, p)
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
		s.mu.RLock()
		_, known := s.raw[topic]
		s.mu.RUnlock()
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

// pollRecords is the most records one poll of consume takes. The hot tier
// pauses at the first poll that brings it to max_hot_events, so it holds
// at most max_hot_events - 1 plus what that poll adds: up to pollRecords
// records, each held once per read model that counts it (an inventory
// update once). A poll takes what one fetch response buffered, which after
// a resume can be the whole backlog up to this limit.
const pollRecords = 20_000

// consume reads records and updates the hot structures.
func (s *Streamer) consume(ctx context.Context) error {
	type enriched struct {
		key, value []byte
	}
	undecidedFor := 0 // polls in a row that met undecided records
	for {
		fetches := s.cl.PollRecords(ctx, pollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				s.log.Warn("fetch error", logkey.Topic, fe.Topic, logkey.Partition, fe.Partition, logkey.Err, fe.Err)
			}
		}
		span := s.updateSpan(ctx, fetches.NumRecords())
		var out []enriched
		touched := map[*model]map[string]bool{} // rows changed, per model
		now := s.deps.Now().UnixMicro()
		// Records whose schema the registry could not be asked about are
		// read again (with the rest of their partition) after a pause:
		// skipping them would part the hot tier from ingest, which
		// retries them too.
		var (
			rewind    map[string]map[int32]kgo.EpochOffset
			undecided error
		)

		s.mu.Lock()
		hotBefore := s.hotCount
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			if p.Topic == s.cfg.ProductsTopic {
				for _, r := range p.Records {
					s.applyProduct(r)
				}
				s.m.products.Set(float64(len(s.products)))
				return
			}
			sink := s.raw[p.Topic]
			var rawStart int64
			if sink != nil {
				rawStart, _ = sink.offsets.Get(p.Topic, p.Partition)
			}
			isOrders := p.Topic == s.in.Orders.Topic
			// The windows and the enrichment see each order once: those
			// after the live model's offsets (or the raw table's).
			liveOff := rawStart
			if s.live != nil {
				liveOff, _ = s.live.offsets.Get(p.Topic, p.Partition)
			}
			modelTopic := s.modelTopics[p.Topic]
			key := dedupe.Key{Topic: p.Topic, Partition: p.Partition}
			accepted := 0
			latest := int64(math.MinInt64) // event time, for the sessions' clock
			next := p.Records[len(p.Records)-1].Offset + 1
			for _, r := range p.Records {
				recTs := r.Timestamp.UnixMicro()
				if derr := s.dec.Decode(r.Value, recTs, &s.ev); derr != nil {
					if derr.Unavailable != nil {
						if rewind == nil {
							rewind = map[string]map[int32]kgo.EpochOffset{}
						}
						if rewind[p.Topic] == nil {
							rewind[p.Topic] = map[int32]kgo.EpochOffset{}
						}
						rewind[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: -1, Offset: r.Offset}
						undecided, next = derr, r.Offset
						break
					}
					continue // a dead letter: in the lake's dlq table, not hot
				}
				if s.dd.Seen(key, r.Offset, s.ev.EventID) {
					continue
				}
				ev := &s.ev
				if sink != nil && r.Offset >= rawStart {
					c := schema.Coords{Topic: p.Topic, Partition: p.Partition, Offset: r.Offset, KafkaTs: recTs, Ingested: now}
					if !sink.add(ev, &c, s.deps.Codecs) {
						continue // ingest sends it to the dead-letter table (schema_conflict)
					}
				}
				accepted++
				if ev.Version == nil {
					continue
				}
				if s.sess != nil && modelTopic {
					latest = max(latest, ev.TsMicros)
					s.addToSessions(p.Topic, p.Partition, r.Offset, ev)
				}
				for _, md := range s.byType[ev.Version.Subject] {
					if !modelTopic {
						break
					}
					if row := s.addToModel(md, p.Topic, p.Partition, r.Offset, ev); row != nil {
						if touched[md] == nil {
							touched[md] = map[string]bool{}
						}
						touched[md][row.Key] = true
					}
				}
				if isOrders && r.Offset >= liveOff && ev.Version.Subject == s.in.Orders.Type {
					oc := s.orderColsOf(ev.Version)
					amount, ok := decimalAt(ev, oc.amount, oc.scale)
					if !ok {
						continue
					}
					userID, _ := ev.String(oc.user)
					user := xxh3.Hash(userID)
					productID, _ := ev.String(oc.product)
					if s.win.add(ev.TsMicros, amount, user, string(productID)) {
						s.m.late.Inc()
						s.logEvent(ctx, "late order: its windows had closed", r, ev)
					}
					if s.publish {
						// The decoder's fields may point into its scratch
						// buffer, valid until the next Decode: copy.
						k, _ := ev.String(oc.key)
						qty, _ := ev.Int(oc.quantity)
						out = append(out, enriched{key: bytes.Clone(k), value: s.enrich(ev, amount, productID, qty)})
					}
				}
			}
			if s.high[p.Topic] == nil {
				s.high[p.Topic] = map[int32]int64{}
			}
			last := p.Records[len(p.Records)-1].Offset
			s.high[p.Topic][p.Partition] = next
			if s.sess != nil && modelTopic {
				s.sess.readPartition(p.Topic, p.Partition, latest, p.HighWatermark > next)
			}
			s.m.events.WithLabelValues(p.Topic).Add(float64(accepted))
			s.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
		})
		if s.sess != nil {
			s.sess.tick()
		}
		// Under mu: see closeWindows.
		for md, keys := range touched {
			s.push.add(s.updates(md, slices.Collect(maps.Keys(keys))))
		}
		if s.hotCount > hotBefore && s.cfg.Commit {
			s.progress.Pending(s.deps.Now())
		}
		s.setStateSizes()
		pause := s.hotCount >= s.cfg.MaxHotEvents && !s.paused
		if pause {
			s.paused = true
		}
		var recs []sinkRecord
		for _, sink := range s.raw {
			for rec := sink.take(); rec != nil; rec = sink.take() {
				recs = append(recs, sinkRecord{table: sink.table, rec: rec})
			}
		}
		if rewind != nil {
			s.cl.SetOffsets(rewind)
		}
		if pause {
			// Every topic whose events the hot tier holds for a read model.
			s.pausedTopics = nil
			// (every topic declared models count, whether or not one has
			// events held yet; not the sessions table's numbering).
			for topic := range s.modelTopics {
				if !slices.Contains(s.pausedTopics, topic) {
					s.pausedTopics = append(s.pausedTopics, topic)
				}
			}
			// Paused under mu, as resumeIfDrained resumes under mu: paused
			// after the unlock, a commit draining the hot tier in between
			// would resume first, and the topics would stay paused for
			// good with s.paused false.
			s.m.paused.Set(1)
			s.m.pauses.Inc()
			s.cl.PauseFetchTopics(s.pausedTopics...)
		}
		paused, hot := s.pausedTopics, s.hotCount
		s.mu.Unlock()

		if pause {
			// hot_events - polled_events is what the hot tier held before
			// this poll: below max_hot_events, or an earlier poll would
			// have paused.
			s.log.Warn("hot tier full: pausing fetching until read models are committed", "max_hot_events", s.cfg.MaxHotEvents,
				"hot_events", hot, "polled_events", hot-hotBefore, "topics", paused)
		}
		for i, r := range recs {
			err := s.deps.Sink.AppendRows(ctx, r.table, r.rec)
			r.rec.Release()
			if err != nil {
				for _, rest := range recs[i+1:] {
					rest.rec.Release()
				}
				tracing.EndSpan(span, err)
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("hand hot rows of %s to the query service: %w", r.table, err)
			}
		}
		for _, e := range out {
			s.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: s.cfg.EnrichedTopic, Key: e.key, Value: e.value},
				func(_ *kgo.Record, err error) {
					if err != nil {
						s.m.enrichErrors.Inc()
						return
					}
					s.m.enriched.Inc()
				})
		}
		span.End()
		if undecided != nil {
			if !waitUndecided(ctx, s.log, undecided, &undecidedFor) {
				return nil
			}
		} else {
			undecidedFor = 0
		}
	}
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
		s.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset < end[r.Partition] {
				s.applyProduct(r)
			}
			if r.Offset+1 >= end[r.Partition] {
				done[r.Partition] = true
			}
		})
		s.m.products.Set(float64(len(s.products)))
		s.mu.Unlock()
	}
	s.log.Info("product catalog loaded", "products", len(s.products))
	return end, nil
}
