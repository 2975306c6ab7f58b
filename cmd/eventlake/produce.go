package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/internal/producer"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// runProduce publishes generated demo events or replays an NDJSON file.
func runProduce(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, true, false, "")
	rate := fs.Float64("rate", 1000, "events per second; 0 sends as fast as possible")
	count := fs.Int64("count", 0, "stop after this many events (0: until --duration or Ctrl-C)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	seed := fs.Uint64("seed", 1, "generator seed; the same seed yields the same events")
	late := fs.Float64("late-fraction", 0.05, "fraction of events arriving up to 2 minutes late")
	inv := fs.Float64("inventory-fraction", 0.2, "fraction of inventory.updated events")
	bad := fs.Float64("malformed-fraction", 0, "fraction of malformed messages (they land in the dead-letter table)")
	dup := fs.Float64("duplicate-fraction", 0, "fraction of exact repeats of a recent order (producer retries; dropped by deduplication)")
	start := fs.String("start", "now", `event time of the first event (RFC 3339), or "now" for wall-clock event times`)
	step := fs.Duration("step", time.Millisecond, "event-time step per event when --start is a time")
	file := fs.String("file", "", "replay this NDJSON file (one message per line) instead of generating")
	topic := fs.String("topic", "", "topic for --file (default: by each line's type: order.* -> orders.created, inventory.* -> inventory.updated)")
	products := fs.Bool("products", false, "publish the generator's product catalog (for --seed) to products.changelog; alone it publishes only the catalog, with --count/--rate/--duration events follow")
	productsTopic := fs.String("products-topic", "products.changelog", "compacted topic of the product catalog")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, log, err := loadClientConfig(ctx, &cf, env)
	if err != nil {
		return err
	}
	tp, stopTracing, err := openTracing(cfg, "produce", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if *rate < 0 || *count < 0 || *late < 0 || *late > 1 || *inv < 0 || *inv > 1 || *bad < 0 || *bad > 1 || *dup < 0 || *dup > 1 {
		return usageError{"produce: rates, counts and fractions must be non-negative (fractions at most 1)"}
	}
	kopts, err := cfg.Kafka.Opts(log)
	if err != nil {
		return err
	}
	p, err := producer.New(producer.Config{}, kopts, log, tp)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	done := func(err error) {
		if err != nil {
			if failed.Add(1) == 1 {
				firstErr.Store(err)
			}
			return
		}
		sent.Add(1)
	}
	began := time.Now()
	var n int64
	if *products {
		for _, pr := range demo.New(demo.Config{Seed: *seed}).Products() {
			p.PublishRaw(context.WithoutCancel(ctx), *productsTopic, []byte(pr.ID), demo.ProductRecord(pr), done)
		}
		if err := p.Flush(ctx); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "published %d products to %s\n", sent.Load(), *productsTopic)
		if !countSet(fs) && *duration == 0 && *file == "" {
			// Only the catalog was asked for.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return p.Close(cctx)
		}
		sent.Store(0)
	}
	if *file != "" {
		n, err = replayFile(ctx, p, cfg.ReadModels.ModelInputs, *file, *topic, *rate, *count, done)
	} else {
		gc := demo.Config{Seed: *seed, LateFraction: *late, InventoryFraction: *inv, MalformedFraction: *bad, DuplicateFraction: *dup}
		if *start == "now" {
			gc.Clock = time.Now
		} else {
			t, perr := time.Parse(time.RFC3339Nano, *start)
			if perr != nil {
				return usageError{fmt.Sprintf("--start %q: %v", *start, perr)}
			}
			gc.Start, gc.Step = t, *step
		}
		n, err = generate(ctx, p, demo.New(gc), *rate, *count, done)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if cerr := p.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	el := time.Since(began)
	fmt.Fprintf(env.stdout, "produced %d of %d messages in %s (%.0f msg/s), %d failed\n",
		sent.Load(), n, el.Round(time.Millisecond), float64(sent.Load())/el.Seconds(), failed.Load())
	if err != nil {
		return err
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d messages were not acknowledged; first error: %v", f, firstErr.Load())
	}
	return nil
}

// pacer spaces sends to a target rate (0: no limit).
type pacer struct {
	rate  float64
	start time.Time
}

func (pc *pacer) wait(ctx context.Context, i int64) error {
	if pc.rate <= 0 {
		return ctx.Err()
	}
	due := pc.start.Add(time.Duration(float64(i) / pc.rate * float64(time.Second)))
	if d := time.Until(due); d > time.Millisecond {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err()
}

func generate(ctx context.Context, p *producer.Producer, g *demo.Generator, rate float64, count int64, done func(error)) (int64, error) {
	pc := &pacer{rate: rate, start: time.Now()}
	var i int64
	for count == 0 || i < count {
		if pc.wait(ctx, i) != nil {
			break
		}
		// Each event's producer span is in its envelope's metadata.
		span, traceID, spanID := p.StartEvent(ctx)
		m := g.NextTraced(schema.Metadata{TraceID: traceID, SpanID: spanID})
		if span.IsRecording() {
			span.SetAttributes(attribute.String("eventlake.event_id", m.EventID))
		}
		// Records already generated are delivered even when ctx ends;
		// Close flushes them.
		p.PublishEvent(context.WithoutCancel(ctx), span, m.Topic, bytes.Clone(m.Key), bytes.Clone(m.Value), done)
		i++
	}
	return i, nil
}

// replayFile publishes the lines of an NDJSON file. Without a topic,
// each envelope goes to the topic of its type as the read models name it
// (read_models.<model>.type -> .topic), keyed by its event id.
func replayFile(ctx context.Context, p *producer.Producer, in lake.ModelInputs, path, topic string, rate float64, count int64, done func(error)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	pc := &pacer{rate: rate, start: time.Now()}
	var (
		i    int64
		line int
	)
	routes := map[string]string{in.Orders.Type: in.Orders.Topic, in.Inventory.Type: in.Inventory.Topic}
	for sc.Scan() {
		line++
		v := bytes.TrimSpace(sc.Bytes())
		if len(v) == 0 {
			continue
		}
		if count > 0 && i >= count {
			break
		}
		if pc.wait(ctx, i) != nil {
			break
		}
		t := topic
		var key []byte
		if t == "" {
			var head struct {
				EventID string `json:"event_id"`
				Type    string `json:"type"`
			}
			if err := json.Unmarshal(v, &head); err != nil {
				return i, fmt.Errorf("%s:%d: cannot route a message without --topic: %v", path, line, err)
			}
			if t = routes[head.Type]; t == "" {
				return i, fmt.Errorf("%s:%d: no topic for type %q; pass --topic", path, line, head.Type)
			}
			key = []byte(head.EventID)
		}
		p.PublishRaw(context.WithoutCancel(ctx), t, key, bytes.Clone(v), done)
		i++
	}
	if err := sc.Err(); err != nil {
		return i, fmt.Errorf("read %s: %w", path, err)
	}
	return i, nil
}

// countSet reports whether --count or --rate was given explicitly.
func countSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "count" || f.Name == "rate" })
	return set
}
