// Package sessionwin groups events into session windows: a session is a run
// of events of one key (a user id) in which consecutive events, in event
// time, are at most Gap apart. It is plumbing for the hot tier, which keeps
// the user_sessions read model (key, start, end, events, orders, revenue)
// exact while events stream in, and for the re-aggregation and backfill
// that recompute the same rows from the lake's raw events: Engine is the
// streaming side, Sessionize the batch side, and both follow the same
// rules, so a recomputation replaces streamed rows with equal ones. It
// imports no foundation package; the caller maps events to keys and
// contributions and sessions to rows.
//
// # Streaming
//
// Engine.Add takes one event: key, event time in microseconds since the
// Unix epoch, and the Contribution it adds to its session (orders and
// revenue; every event counts one in Events). The watermark is the largest
// event time seen minus Config.Lateness. A session closes once the
// watermark passes its end by more than Gap (watermark > end + gap): no
// event at or after the watermark can reach it any more. Engine.Advance
// returns the sessions that closed, for the caller to commit; Engine.Flush
// closes all of them at the end of a bounded input.
//
// Events arrive out of order. One at or after the watermark is always
// applied: it opens a session, falls inside one, extends one at either end,
// or bridges two open sessions of its key, which then merge into one.
// An event older than the watermark is applied only when it falls inside
// an open session or at most Gap after its end (where it may also bridge to
// the key's next session); otherwise Add reports it late, counts it and
// does not apply it. That covers the events that would touch a session
// already closed and those whose key has no open session within Gap. It
// also covers an event that would move an open session's start earlier:
// the engine keeps nothing of emitted sessions, so it cannot tell whether
// the event would reach an emitted session of the same key below, and
// restoring from committed rows (see Restart) could not tell either. Late
// events are in the lake; the caller corrects their sessions by
// re-aggregation (Sessionize over the key's events of the affected span).
//
// The rule above depends only on the events and their arrival order, not
// on when Advance is called: a session the watermark has passed counts as
// closed from that moment, although it is returned by the next Advance.
// As long as nothing is evicted, the sessions returned by Add, Advance and
// a final Flush are exactly those of Sessionize over the applied events
// (all events but the late ones), in the same order.
//
// # Bounded memory
//
// At most Config.MaxOpen sessions are held. When an event needs a new
// session and the engine is full, the session with the oldest end is
// closed early: Add appends it to its dst with Evicted set, and counts it.
// An evicted session is not late-protected: a later event of its key
// within Gap of it opens a new session (the user's visit is split into two
// rows), and an event older than the watermark finds no open session and
// is reported late. Re-aggregation corrects both. Size MaxOpen above the
// number of keys active within Gap+Lateness so that eviction is rare; the
// metrics show when it happens.
//
// State is one slice of fixed-size session records (80 bytes), a heap of
// their indices ordered by end, and one map from key to the key's earliest
// open session (a key's sessions are linked in start order); the key's
// bytes are the caller's string, kept while its session is open. With
// 21-byte keys, an open session costs about 150 bytes of heap, and about
// 190 once evictions have churned the map (TestMemoryPerOpenSession,
// TestMillionKeysBounded).
//
// # Restart
//
// The caller commits, with the offsets it has read, the sessions closed so
// far as final rows, the open ones (Engine.Open) as provisional rows that
// later commits replace, and Engine.Watermark. After a restart,
// Engine.Restore rebuilds the state from the provisional rows and the
// watermark, and reading resumes at the committed offsets: the sessions
// then equal those of an uninterrupted run, and no event is counted twice.
//
// # Idle progress
//
// With Config.IdleTimeout set, Advance(now) moves the watermark on
// processing time once no event has arrived for IdleTimeout: event time is
// then taken to have advanced as much as processing time since the last
// event arrived, so that the last sessions of a quiet stream close. The
// arrival of events is noted by Advance, so its precision is the interval
// between Advance calls. The watermark never moves back.
//
// Metrics (registered on the Registerer given to New; wrap it with
// prometheus.WrapRegistererWith for several engines in one process):
// eventlake_sessions_open, eventlake_sessions_closed_total,
// eventlake_sessions_evicted_total and eventlake_sessions_late_total.
package sessionwin
