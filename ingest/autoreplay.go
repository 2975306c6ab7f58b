package ingest

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/schema"
)

// SchemaWatcher is what the automatic replay needs of the schemas: the
// current set, and a call when it changes (schema.Resolver).
type SchemaWatcher interface {
	Set() *schema.Set
	OnChange(func(*schema.Set))
}

// AutoReplayer replays a subject's pending dead letters when a new
// version of it is registered (ReplayConfig.AutoReplay): the rows whose
// reason a schema can change (AutoReplayReasons), requested by auto, with
// the guarantees and the record of any replay. A replay that fails is
// tried again later; unfinished replays are recovered when it starts.
type AutoReplayer struct {
	rp      *Replayer
	schemas SchemaWatcher
	delay   time.Duration
	log     *slog.Logger
	changed chan struct{}
}

// NewAutoReplayer returns the automatic replay of rp, watching schemas.
func NewAutoReplayer(rp *Replayer, schemas SchemaWatcher, delay time.Duration, log *slog.Logger) *AutoReplayer {
	a := &AutoReplayer{rp: rp, schemas: schemas, delay: delay, log: log, changed: make(chan struct{}, 1)}
	schemas.OnChange(func(*schema.Set) {
		select {
		case a.changed <- struct{}{}:
		default: // one wake-up pending is enough: Run reads the latest set
		}
	})
	return a
}

// latestVersions maps each subject of set to its newest version.
func latestVersions(set *schema.Set) map[string]int {
	out := map[string]int{}
	if set == nil {
		return out
	}
	for _, sub := range set.Subjects() {
		out[sub.Name] = sub.LatestVersion()
	}
	return out
}

// Run watches registrations until ctx ends.
func (a *AutoReplayer) Run(ctx context.Context) error {
	if err := a.rp.Recover(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("recovering interrupted replays failed; retried before the next replay", logkey.Err, err)
	}
	known := latestVersions(a.schemas.Set())
	due := map[string]time.Time{} // subject -> when to replay it
	retry := map[string]time.Duration{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := time.Time{}
		for _, t := range due {
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.changed:
			cur := latestVersions(a.schemas.Set())
			for sub, v := range cur {
				if v > known[sub] {
					a.log.Info("new schema version: replaying its pending dead letters soon", "subject", sub, "version", v, "delay", a.delay)
					due[sub] = time.Now().Add(a.delay)
				}
			}
			known = cur
			continue
		case <-timer.C:
		}
		var subjects []string
		for sub, t := range due {
			if !t.After(time.Now()) {
				subjects = append(subjects, sub)
			}
		}
		slices.Sort(subjects)
		for _, sub := range subjects {
			_, err := a.rp.ReplayAll(ctx, ReplayRequest{
				Filter:      DLQFilter{Reasons: AutoReplayReasons, Types: []string{sub}},
				RequestedBy: RequestedByAuto, Trigger: TriggerAuto,
			}, a.rp.rcfg.BatchRows)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				wait := min(max(2*retry[sub], a.delay, time.Second), 5*time.Minute)
				retry[sub] = wait
				due[sub] = time.Now().Add(wait)
				a.log.Warn("automatic replay failed, trying again", "subject", sub, "in", wait, logkey.Err, err)
				continue
			}
			delete(due, sub)
			delete(retry, sub)
		}
	}
}
