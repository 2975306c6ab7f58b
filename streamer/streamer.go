package streamer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/internal/envelope"
	"github.com/eventlake/eventlake/internal/eventtime"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/internal/hot"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// RawTable is a raw table whose fresh rows go to the Sink.
type RawTable struct {
	Topic, Table, Kind string
}

// Deps are the streamer's collaborators.
type Deps struct {
	Catalog   *lake.Catalog
	KafkaOpts []kgo.Opt
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
	// RawTables are the raw tables ingest writes; their fresh rows (after
	// the offsets the tables store) are handed to Sink.
	RawTables []RawTable
	// DedupeWindow and MaxMessageBytes must equal ingest's, so that the hot
	// tier accepts and drops exactly the events ingest does.
	DedupeWindow    int64
	MaxMessageBytes int
	// Sink receives fresh raw rows; nil to skip them.
	Sink hot.Sink
	// Failpoints stop the process at protocol points in crash tests.
	Failpoints *failpoint.Set
}

// Streamer is the hot tier; see the package comment.
type Streamer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics
	hub  *hub

	committer  *lake.Committer
	dec        envelope.Decoder
	ev         envelope.Event
	dd         *dedupe.Set
	rawByTopic map[string]RawTable

	cl *kgo.Client

	mu       sync.RWMutex // guards everything below
	ready    bool
	rev      revModel
	act      coldTable
	inv      invModel
	orders   map[int32][]hotOrder // per orders partition, offset order, from the floor
	invs     map[int32][]hotInv
	high     map[string]map[int32]int64 // next offset read
	rawStart map[string]map[int32]int64 // first offset handed to the sink
	hotCount int
	win      *windows
	closed   map[string][]WindowResult // recently closed windows per spec
	products map[string]product
	paused   bool
	publish  bool // enriched orders are published (committer, topic exists)
}

type revModel struct {
	coldTable
	cold map[int64]agg // minute -> committed figure
	hot  map[int64]agg // minute -> events after the committed offsets
}

type invModel struct {
	coldTable
	cold map[string]invState
}

type hotOrder struct {
	off, minute, cents int64
	user               uint64
}

type hotInv struct {
	off       int64
	product   string
	stock, ts int64
	warehouse string
}

// New builds a streamer; Run starts it.
func New(cfg Config, deps Deps) (*Streamer, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("streamer: a catalog is required")
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
	s := &Streamer{
		cfg: cfg, deps: deps,
		log:        deps.Logger.With(logkey.Component, "streamer"),
		m:          newMetrics(deps.Registry),
		dec:        envelope.Decoder{MaxBytes: deps.MaxMessageBytes},
		dd:         dedupe.New(deps.DedupeWindow),
		rawByTopic: map[string]RawTable{},
		orders:     map[int32][]hotOrder{},
		invs:       map[int32][]hotInv{},
		high:       map[string]map[int32]int64{},
		rawStart:   map[string]map[int32]int64{},
		closed:     map[string][]WindowResult{},
		products:   map[string]product{},
	}
	s.hub = newHub(cfg.SSEBuffer, s.m.sseDropped.Inc)
	s.win = newWindows(DefaultWindows(), cfg.AllowedLateness, cfg.IdleTimeout, deps.Now)
	for _, r := range deps.RawTables {
		s.rawByTopic[r.Topic] = r
	}
	s.committer = lake.NewCommitter(deps.Catalog, lake.CommitConfig{
		Writer: lake.WriterName("streamer"),
	}, lake.CommitHooks{
		Conflict: func(t string) { s.m.conflicts.WithLabelValues(t).Inc() },
		Error:    func(t string, _ error) { s.m.commitErrors.WithLabelValues(t).Inc() },
	}, s.log, deps.Failpoints)
	return s, nil
}

// Ready reports whether the hot tier has loaded the read models and
// started reading.
func (s *Streamer) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

// Run reads until ctx ends. With Commit set it commits read models every
// CommitInterval and once more on shutdown.
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
	err = g.Wait()
	if s.cfg.Commit {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if cerr := s.commitReadModels(sctx); cerr != nil {
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

// bootstrap creates or loads the read models, reads the raw tables'
// offsets and works out where to start reading every partition.
func (s *Streamer) bootstrap(ctx context.Context) (map[string]map[int32]kgo.Offset, error) {
	cat := s.deps.Catalog
	for _, def := range []lake.TableDef{lake.OrderRevenueMinuteDef(), lake.UserActivityMinuteDef(), lake.InventoryHealthDef()} {
		if _, err := cat.EnsureTable(ctx, def); err != nil {
			return nil, err
		}
	}
	s.rev = revModel{coldTable: coldTable{name: lake.TableOrderRevenueMinute}, hot: map[int64]agg{}}
	s.act = coldTable{name: lake.TableUserActivityMinute}
	s.inv = invModel{coldTable: coldTable{name: lake.TableInventoryHealth}}
	if err := s.reloadRevenue(ctx, true); err != nil {
		return nil, err
	}
	if err := s.reloadActivity(ctx); err != nil {
		return nil, err
	}
	if err := s.reloadInventory(ctx, true); err != nil {
		return nil, err
	}
	rawOffsets := map[string]lake.Offsets{}
	for topic, rt := range s.rawByTopic {
		v, err := loadView(ctx, cat, rt.Table)
		if err != nil {
			return nil, err
		}
		rawOffsets[topic] = v.offsets
	}

	// Partitions of the topics.
	admCl, err := kgo.NewClient(s.deps.KafkaOpts...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	topics := []string{s.cfg.OrdersTopic, s.cfg.InventoryTopic, s.cfg.ProductsTopic}
	var md kadm.Metadata
	for {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		md, err = adm.Metadata(mctx, topics...)
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
		emd, err := adm.Metadata(ctx, s.cfg.EnrichedTopic)
		if td, ok := emd.Topics[s.cfg.EnrichedTopic]; err != nil || !ok || td.Err != nil {
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
	window := s.dd.Window()
	for _, topic := range topics {
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			s.log.Warn("topic not found; the hot tier does not read it", logkey.Topic, topic)
			continue
		}
		starts[topic] = map[int32]kgo.Offset{}
		for p := range td.Partitions {
			if topic == s.cfg.ProductsTopic {
				starts[topic][p] = kgo.NewOffset().At(catalogEnd[p]).WithEpoch(-1)
				continue
			}
			// Start at the lowest offset any hot structure needs, minus the
			// dedupe window (read again only to decide duplicates alike).
			var need []int64
			if _, ok := s.rawByTopic[topic]; ok && s.deps.Sink != nil {
				o, _ := rawOffsets[topic].Get(topic, p)
				need = append(need, o)
				if s.rawStart[topic] == nil {
					s.rawStart[topic] = map[int32]int64{}
				}
				s.rawStart[topic][p] = o
			}
			switch topic {
			case s.cfg.OrdersTopic:
				o1, _ := s.rev.offsets.Get(topic, p)
				o2, _ := s.act.offsets.Get(topic, p)
				need = append(need, o1, o2)
			case s.cfg.InventoryTopic:
				o, _ := s.inv.offsets.Get(topic, p)
				need = append(need, o)
			}
			lo := int64(0)
			if len(need) > 0 {
				lo = need[0]
				for _, o := range need[1:] {
					lo = min(lo, o)
				}
			}
			starts[topic][p] = kgo.NewOffset().At(max(0, lo-window)).WithEpoch(-1)
		}
	}
	if len(starts) == 0 {
		return nil, fmt.Errorf("none of the topics %v exists", topics)
	}
	return starts, nil
}

// consume reads records and updates the hot structures.
func (s *Streamer) consume(ctx context.Context) error {
	type enriched struct {
		key, value []byte
	}
	for {
		fetches := s.cl.PollRecords(ctx, 20_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				s.log.Warn("fetch error", logkey.Topic, fe.Topic, logkey.Partition, fe.Partition, logkey.Err, fe.Err)
			}
		}
		sink := map[string][]hot.Row{}
		var out []enriched
		touched := map[int64]bool{}
		now := s.deps.Now().UnixMicro()

		s.mu.Lock()
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
			raw, toSink := s.rawByTopic[p.Topic]
			toSink = toSink && s.deps.Sink != nil
			revOff, hasRev := s.rev.offsets.Get(p.Topic, p.Partition)
			actOff, hasAct := s.act.offsets.Get(p.Topic, p.Partition)
			floor := min(offOr0(revOff, hasRev), offOr0(actOff, hasAct))
			invOff, hasInv := s.inv.offsets.Get(p.Topic, p.Partition)
			rawStart := s.rawStart[p.Topic][p.Partition]
			key := dedupe.Key{Topic: p.Topic, Partition: p.Partition}
			accepted := 0
			for _, r := range p.Records {
				if derr := s.dec.Decode(r.Value, &s.ev); derr != nil {
					continue // a dead letter: in the lake's dlq table, not hot
				}
				if s.dd.Seen(key, r.Offset, s.ev.EventID) {
					continue
				}
				ev := &s.ev
				accepted++
				if toSink && r.Offset >= rawStart {
					sink[raw.Table] = append(sink[raw.Table], hotRow(r, ev, now))
				}
				switch {
				case p.Topic == s.cfg.OrdersTopic && ev.IsOrder && r.Offset >= floor:
					minute := eventtime.FloorDiv(ev.TsMicros, eventtime.MicrosPerMinute)
					user := xxh3.Hash(ev.Order.UserID)
					ho := hotOrder{off: r.Offset, minute: minute, cents: ev.Order.AmountCents, user: user}
					s.orders[p.Partition] = append(s.orders[p.Partition], ho)
					s.hotCount++
					if r.Offset >= offOr0(revOff, hasRev) {
						a := s.rev.hot[minute]
						a.cents += ho.cents
						a.count++
						s.rev.hot[minute] = a
						touched[minute] = true
						if s.win.add(ev.TsMicros, ho.cents, user, string(ev.Order.ProductID)) {
							s.m.late.Inc()
						}
						if s.publish {
							// The decoder's fields may point into its scratch
							// buffer, valid until the next Decode: copy.
							out = append(out, enriched{key: bytes.Clone(ev.Order.OrderID), value: s.enrich(ev)})
						}
					}
				case p.Topic == s.cfg.InventoryTopic && ev.IsInventory && r.Offset >= offOr0(invOff, hasInv):
					hi := hotInv{off: r.Offset, product: string(ev.Inventory.ProductID), stock: ev.Inventory.Stock,
						ts: ev.TsMicros, warehouse: string(ev.Inventory.Warehouse)}
					s.invs[p.Partition] = append(s.invs[p.Partition], hi)
					s.hotCount++
				}
			}
			if s.high[p.Topic] == nil {
				s.high[p.Topic] = map[int32]int64{}
			}
			last := p.Records[len(p.Records)-1].Offset
			s.high[p.Topic][p.Partition] = last + 1
			s.m.events.WithLabelValues(p.Topic).Add(float64(accepted))
			s.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
		})
		updates := s.minuteUpdates(touched)
		s.m.hotEvents.Set(float64(s.hotCount))
		pause := s.hotCount >= s.cfg.MaxHotEvents && !s.paused
		if pause {
			s.paused = true
		}
		s.mu.Unlock()

		s.hub.publish(updates)
		if pause {
			s.log.Warn("hot tier full: pausing fetching until read models are committed", "max_hot_events", s.cfg.MaxHotEvents)
			s.m.paused.Set(1)
			s.cl.PauseFetchTopics(s.cfg.OrdersTopic, s.cfg.InventoryTopic)
		}
		for table, rows := range sink {
			if err := s.deps.Sink.AppendRows(ctx, table, rows); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("hand hot rows of %s to the query service: %w", table, err)
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
	}
}

func offOr0(o int64, ok bool) int64 {
	if !ok {
		return 0
	}
	return o
}

// minuteUpdates are the live updates for the given minutes. Called with mu
// held.
func (s *Streamer) minuteUpdates(minutes map[int64]bool) []Update {
	if len(minutes) == 0 {
		return nil
	}
	wm, hasWm := s.win.watermark()
	ms := make([]int64, 0, len(minutes))
	for m := range minutes {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	out := make([]Update, 0, len(ms))
	for _, m := range ms {
		a := s.total(m)
		out = append(out, Update{
			Minute: time.UnixMicro(m * eventtime.MicrosPerMinute).UTC().Format(time.RFC3339), Revenue: formatCents(a.cents),
			OrderCount: a.count, Final: hasWm && (m+1)*eventtime.MicrosPerMinute <= wm,
		})
	}
	return out
}

// total is a minute's exact figure: committed plus hot. Called with mu held.
func (s *Streamer) total(m int64) agg {
	c, h := s.rev.cold[m], s.rev.hot[m]
	return agg{cents: c.cents + h.cents, count: c.count + h.count}
}

func hotRow(r *kgo.Record, ev *envelope.Event, now int64) hot.Row {
	row := hot.Row{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, KafkaTs: r.Timestamp.UnixMicro(), Received: now,
		EventID: string(ev.EventID), Source: string(ev.Source), Type: string(ev.Type), Ts: ev.TsMicros,
		Payload: string(ev.Payload),
	}
	if ev.Metadata != nil {
		v := string(ev.Metadata)
		row.Metadata = &v
	}
	if ev.TraceID != nil {
		v := string(ev.TraceID)
		row.TraceID = &v
	}
	if ev.SpanID != nil {
		v := string(ev.SpanID)
		row.SpanID = &v
	}
	if ev.IsOrder {
		row.IsOrder = true
		row.OrderID, row.UserID, row.ProductID = string(ev.Order.OrderID), string(ev.Order.UserID), string(ev.Order.ProductID)
		row.Quantity, row.AmountCents = ev.Order.Quantity, ev.Order.AmountCents
	}
	if ev.IsInventory {
		row.IsInventory = true
		row.InvProductID = string(ev.Inventory.ProductID)
		if ev.Inventory.Warehouse != nil {
			v := string(ev.Inventory.Warehouse)
			row.Warehouse = &v
		}
		row.Stock = ev.Inventory.Stock
		if ev.Inventory.HasDelta {
			d := ev.Inventory.Delta
			row.Delta = &d
		}
	}
	return row
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
