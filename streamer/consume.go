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

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/zeebo/xxh3"

	"github.com/eventlake/eventlake/internal/dedupe"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/sessionwin"
	"github.com/eventlake/eventlake/internal/tracing"
	"github.com/eventlake/eventlake/schema"
)

// pollRecords is the most records one poll of consume takes. The hot tier
// pauses at the first poll that brings it to max_hot_events, so it holds
// at most max_hot_events - 1 plus what that poll adds: up to pollRecords
// records, each held once per read model that counts it (an inventory
// update once). A poll takes what one fetch response buffered, which after
// a resume can be the whole backlog up to this limit.
const pollRecords = 20_000

// chunkRecords is the most records of one partition applied to the jobs
// at a time: a model's lock is held for one chunk's entries at most, so
// that an answer never waits for a whole poll.
const chunkRecords = 1024

// chunk is what a run of one partition's records brings to each job,
// worked out by readChunk without any job's lock and applied by
// applyChunk under each one's.
type chunk struct {
	models [][]pendingEntry // per model (model.idx)
	sess   []sessInput
	orders []liveOrder
	latest int64 // the latest event time read (the sessions' clock)
}

type pendingEntry struct {
	modelEntry
	ts int64 // event time
}

// sessInput is one event as the sessions count it.
type sessInput struct {
	off int64
	key string // the engine's key: user and day
	ts  int64
	c   sessionwin.Contribution
}

// liveOrder is one order as the windows and the enrichment see it.
type liveOrder struct {
	ts      int64
	amount  decimal128.Num // cents
	user    uint64
	product string
	// enriched is its record on the enriched-orders topic (nil: not
	// published); its catalog entry is filled in under liveMu.
	enriched *enrichedOrder
	key      []byte
	qty      int64
	// For the debug line of a late order.
	rec              *kgo.Record
	eventID, traceID string
}

// partStart says, for one partition read in a poll, where its sink is and
// from which offset each job counts its records. The offsets only grow
// (commits move them): applyChunk checks them again under each job's
// lock, and these spare the work of records below them (read again after
// a start, for the dedupe window).
type partStart struct {
	sink       *rawSink
	rawStart   int64
	modelTopic bool
	isOrders   bool
	liveOff    int64   // the windows and the enrichment see orders from here
	models     []int64 // per model over events (model.idx)
	sess       int64
}

func (s *Streamer) partStart(topic string, p int32) *partStart {
	st := &partStart{isOrders: topic == s.in.Orders.Topic, models: make([]int64, len(s.models))}
	s.srcMu.Lock()
	st.sink, st.modelTopic = s.raw[topic], s.modelTopics[topic]
	s.srcMu.Unlock()
	if st.sink != nil {
		st.rawStart, _ = st.sink.offsets.Get(topic, p)
	}
	st.liveOff = st.rawStart
	for _, md := range s.models {
		if md.m.Table != "" {
			continue
		}
		md.mu.RLock()
		st.models[md.idx], _ = md.offsets.Get(topic, p)
		md.mu.RUnlock()
		if md == s.live {
			// The windows and the enrichment see each order once: those
			// after the live model's offsets (or the raw table's).
			st.liveOff = st.models[md.idx]
		}
	}
	if ss := s.sess; ss != nil {
		ss.mu.Lock()
		st.sess, _ = ss.offsets.Get(topic, p)
		ss.mu.Unlock()
	}
	return st
}

// consume reads records and hands them to the jobs.
func (s *Streamer) consume(ctx context.Context) error {
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
		now := s.deps.Now()
		debug := s.log.Enabled(ctx, slog.LevelDebug)
		// Records whose schema the registry could not be asked about are
		// read again (with the rest of their partition) after a pause:
		// skipping them would part the hot tier from ingest, which
		// retries them too.
		var (
			rewind    map[string]map[int32]kgo.EpochOffset
			undecided error
			publish   []liveOrder
		)
		touched := map[*model]map[string]bool{} // rows changed, per model
		hotBefore := s.hot.Load()

		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			if p.Topic == s.cfg.ProductsTopic {
				s.liveMu.Lock()
				for _, r := range p.Records {
					s.applyProduct(r)
				}
				s.m.products.Set(float64(len(s.products)))
				s.liveMu.Unlock()
				return
			}
			st := s.partStart(p.Topic, p.Partition)
			accepted := 0
			for recs := p.Records; len(recs) > 0; {
				n := min(len(recs), chunkRecords)
				c, acc, next, derr := s.readChunk(st, p.Topic, p.Partition, recs[:n], now.UnixMicro(), debug)
				accepted += acc
				recs = recs[n:]
				if derr != nil {
					if rewind == nil {
						rewind = map[string]map[int32]kgo.EpochOffset{}
					}
					if rewind[p.Topic] == nil {
						rewind[p.Topic] = map[int32]kgo.EpochOffset{}
					}
					rewind[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
					undecided, recs = derr, nil
				}
				s.applyChunk(c, st, p.Topic, p.Partition, next, len(recs) > 0 || p.HighWatermark > next, touched)
				for _, o := range c.orders {
					if o.enriched != nil {
						publish = append(publish, o)
					}
				}
			}
			if st.modelTopic {
				s.modelRecords.Add(int64(len(p.Records)))
			}
			last := p.Records[len(p.Records)-1].Offset
			s.m.events.WithLabelValues(p.Topic).Add(float64(accepted))
			s.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-last-1, 0)))
		})
		if ss := s.sess; ss != nil {
			ss.mu.Lock()
			ss.tick()
			ss.mu.Unlock()
		}
		for md, keys := range touched {
			md.mu.Lock()
			s.push.add(s.updates(md, slices.Collect(maps.Keys(keys))))
			md.mu.Unlock()
		}
		if s.hot.Load() > hotBefore && s.cfg.Commit {
			s.progress.Pending(now)
		}
		s.setStateSizes()
		paused, hot, topics := s.pauseIfFull()
		recs := s.takeRaw()
		if rewind != nil {
			s.cl.SetOffsets(rewind)
		}
		if paused {
			// hot_events - polled_events is what the hot tier held before
			// this poll: below max_hot_events, or an earlier poll would
			// have paused.
			// read_records is the same in the resume line: nothing is
			// read while paused.
			s.log.Warn("hot tier full: pausing fetching until read models are committed", "max_hot_events", s.cfg.MaxHotEvents,
				"hot_events", hot, "polled_events", hot-hotBefore, "read_records", s.modelRecords.Load(), "topics", topics)
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
		for _, o := range publish {
			s.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: s.cfg.EnrichedTopic, Key: o.key, Value: o.enriched.marshal()},
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

// readChunk decodes recs, a run of one partition's records, hands the
// accepted ones to the partition's raw sink and works out what each does
// to the models, the sessions and the live job, without their locks. It
// returns the chunk, the number of events accepted and the offset read up
// to; undecided is set when a record's schema could not be looked up
// (next is then that record's offset: it and the rest are read again).
func (s *Streamer) readChunk(st *partStart, topic string, part int32, recs []*kgo.Record, now int64, debug bool) (
	c *chunk, accepted int, next int64, undecided *schema.Error) {
	c = &s.chunk
	if len(c.models) != len(s.models) {
		c.models = make([][]pendingEntry, len(s.models))
	}
	for i := range c.models {
		c.models[i] = c.models[i][:0]
	}
	c.sess, c.orders, c.latest = c.sess[:0], c.orders[:0], math.MinInt64
	key := dedupe.Key{Topic: topic, Partition: part}
	ev := &s.ev
	for _, r := range recs {
		recTs := r.Timestamp.UnixMicro()
		if derr := s.dec.Decode(r.Value, recTs, ev); derr != nil {
			if derr.Unavailable != nil {
				return c, accepted, r.Offset, derr
			}
			continue // a dead letter: in the lake's dlq table, not hot
		}
		if s.dd.Seen(key, r.Offset, ev.EventID) {
			continue
		}
		if st.sink != nil && r.Offset >= st.rawStart {
			k := schema.Coords{Topic: topic, Partition: part, Offset: r.Offset, KafkaTs: recTs, Ingested: now}
			if !st.sink.add(ev, &k, s.deps.Codecs) {
				continue // ingest sends it to the dead-letter table (schema_conflict)
			}
		}
		accepted++
		if ev.Version == nil {
			continue
		}
		if st.modelTopic {
			if ss := s.sess; ss != nil {
				c.latest = max(c.latest, ev.TsMicros)
				if r.Offset >= st.sess {
					if in, ok := ss.input(ev); ok {
						in.off = r.Offset
						c.sess = append(c.sess, in)
					}
				}
			}
			for _, md := range s.byType[ev.Version.Subject] {
				if r.Offset < st.models[md.idx] {
					continue
				}
				if ct, ok := s.contribution(md, ev); ok {
					c.models[md.idx] = append(c.models[md.idx], pendingEntry{modelEntry{off: r.Offset, c: ct}, ev.TsMicros})
				}
			}
		}
		if st.isOrders && r.Offset >= st.liveOff && ev.Version.Subject == s.in.Orders.Type {
			oc := s.orderColsOf(ev.Version)
			amount, ok := decimalAt(ev, oc.amount, oc.scale)
			if !ok {
				continue
			}
			userID, _ := ev.String(oc.user)
			productID, _ := ev.String(oc.product)
			o := liveOrder{ts: ev.TsMicros, amount: amount, user: xxh3.Hash(userID), product: string(productID), rec: r}
			if debug {
				o.eventID, o.traceID = string(ev.EventID), string(ev.TraceID)
			}
			if s.publish {
				// The decoder's fields may point into its scratch buffer,
				// valid until the next Decode: enrichedOf copies.
				k, _ := ev.String(oc.key)
				o.qty, _ = ev.Int(oc.quantity)
				o.key, o.enriched = bytes.Clone(k), enrichedOf(ev, amount)
			}
			c.orders = append(c.orders, o)
		}
	}
	return c, accepted, recs[len(recs)-1].Offset + 1, nil
}

// applyChunk applies c, read from topic's partition part up to offset
// next, to each job under its own lock; more says whether the partition
// has records after next. The rows of models it changes are added to
// touched.
func (s *Streamer) applyChunk(c *chunk, st *partStart, topic string, part int32, next int64, more bool, touched map[*model]map[string]bool) {
	if st.modelTopic {
		for _, md := range s.models {
			if md.m.Table != "" {
				continue // fed the rows of its table, by the sessions' commit
			}
			md.mu.Lock()
			o, _ := md.offsets.Get(topic, part)
			for _, e := range c.models[md.idx] {
				if e.off < o {
					continue
				}
				row := s.addEntry(md, topic, part, e.off, e.c)
				md.maxTs = max(md.maxTs, e.ts)
				if touched[md] == nil {
					touched[md] = map[string]bool{}
				}
				touched[md][row.Key] = true
			}
			md.read.Set(topic, part, next)
			md.mu.Unlock()
		}
		if ss := s.sess; ss != nil {
			ss.mu.Lock()
			o, _ := ss.offsets.Get(topic, part)
			for _, in := range c.sess {
				if in.off >= o && ss.ready {
					s.addToSessions(in)
				}
			}
			ss.readPartition(topic, part, c.latest, more)
			ss.read.Set(topic, part, next)
			ss.mu.Unlock()
		}
	}
	if len(c.orders) == 0 {
		return
	}
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	for i := range c.orders {
		o := &c.orders[i]
		if s.win.add(o.ts, o.amount, o.user, o.product) {
			s.m.late.Inc()
			if o.eventID != "" {
				s.logEvent("late order: its windows had closed", o.rec, o.eventID, o.traceID)
			}
		}
		if o.enriched != nil {
			s.withProduct(o.enriched, o.product, o.qty)
		}
	}
	s.setWatermark()
}

// pauseIfFull pauses fetching every topic the declared models count once
// the hot tier holds max_hot_events: it reports whether it paused, the
// events held and the topics paused.
func (s *Streamer) pauseIfFull() (bool, int64, []string) {
	// Paused under pauseMu, as resumeIfDrained resumes under it: paused
	// after a commit drained the hot tier and found nothing to resume,
	// the topics would stay paused for good.
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	hot := s.hot.Load()
	s.m.hotEvents.Set(float64(hot)) // the count the pause line reports
	if hot < int64(s.cfg.MaxHotEvents) || s.paused {
		return false, hot, nil
	}
	s.paused = true
	s.srcMu.Lock()
	// Every topic declared models count, whether or not one has events
	// held yet (not the sessions table's numbering).
	s.pausedTopics = slices.Sorted(maps.Keys(s.modelTopics))
	s.srcMu.Unlock()
	s.m.paused.Set(1)
	s.m.pauses.Inc()
	s.cl.PauseFetchTopics(s.pausedTopics...)
	return true, hot, s.pausedTopics
}

// resumeIfDrained resumes fetching paused at max_hot_events once commits
// have drained half of it.
func (s *Streamer) resumeIfDrained() {
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	hot := s.hot.Load()
	if s.paused && hot < int64(s.cfg.MaxHotEvents/2) && s.cl != nil {
		s.paused = false
		s.m.paused.Set(0)
		// Read before resuming: the records of the paused topics read
		// up to now, all before the pause.
		read := s.modelRecords.Load()
		s.cl.ResumeFetchTopics(s.pausedTopics...)
		s.pausedTopics = nil
		// hot, the count the resume was decided on: read again after
		// ResumeFetchTopics, it could hold what the poll loop read since.
		s.log.Info("hot tier drained: fetching resumed", "hot_events", hot, "read_records", read)
	}
}

// takeRaw takes the rows every raw sink built since the last poll.
func (s *Streamer) takeRaw() []sinkRecord {
	s.srcMu.Lock()
	sinks := slices.Collect(maps.Values(s.raw))
	s.srcMu.Unlock()
	var recs []sinkRecord
	for _, sink := range sinks {
		for rec := sink.take(); rec != nil; rec = sink.take() {
			recs = append(recs, sinkRecord{table: sink.table, rec: rec})
		}
	}
	return recs
}
