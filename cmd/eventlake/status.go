package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/eventlake/eventlake/query"
)

// tokenEnv is the token `eventlake status` sends when --token is not set.
const tokenEnv = "EVENTLAKE_TOKEN"

// seconds is a flag of whole or fractional seconds ("2") or a Go duration
// ("500ms").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil || *s.d == 0 {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
	} else if d, err := time.ParseDuration(v); err == nil {
		*s.d = d
	} else {
		return fmt.Errorf("%q is neither seconds (2) nor a duration (500ms)", v)
	}
	if *s.d < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// runStatus shows GET /v1/status of a query process in one screen: the
// same facts as the live page.
func runStatus(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "the query service (eventlake dev or eventlake query)")
	token := fs.String("token", "", "bearer token (default $"+tokenEnv+", else the contents of <data-dir>/"+adminTokenFile+")")
	dataDir := fs.String("data-dir", "data", "data directory of `eventlake dev`, whose admin token is used when no token is given")
	var watch time.Duration
	fs.Var(seconds{&watch}, "watch", "redraw every N seconds (2, or 500ms) until Ctrl-C")
	asJSON := fs.Bool("json", false, "print the endpoint's JSON instead")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	tok, err := statusToken(*token, env.getenv(tokenEnv), *dataDir)
	if err != nil {
		return err
	}
	endpoint := strings.TrimSuffix(*url, "/") + "/v1/status"
	client := &http.Client{Timeout: 10 * time.Second}
	interactive := false
	if f, ok := env.stdout.(*os.File); ok {
		interactive = term.IsTerminal(int(f.Fd()))
	}
	for {
		body, st, err := fetchStatus(ctx, client, endpoint, tok)
		if err != nil {
			if watch == 0 {
				return err
			}
			// Keep watching: the service may be restarting.
			if interactive {
				fmt.Fprint(env.stdout, "\x1b[H\x1b[2J")
			}
			fmt.Fprintf(env.stdout, "%s  %v\n", time.Now().UTC().Format("15:04:05"), err)
		} else {
			var out bytes.Buffer
			if *asJSON {
				_ = json.Indent(&out, body, "", "  ")
				out.WriteByte('\n')
			} else {
				width := 0
				if f, ok := env.stdout.(*os.File); ok && interactive {
					width, _, _ = term.GetSize(int(f.Fd()))
				}
				writeStatus(&out, *url, st, width)
			}
			if watch > 0 && interactive {
				fmt.Fprint(env.stdout, "\x1b[H\x1b[2J") // one screen, redrawn in place
			}
			if _, err := env.stdout.Write(out.Bytes()); err != nil {
				return err
			}
		}
		if watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watch):
		}
	}
}

// statusToken picks the token: the flag, the environment, then the dev
// admin token file (which may be absent: auth disabled).
func statusToken(flagTok, envTok, dataDir string) (string, error) {
	if flagTok != "" {
		return flagTok, nil
	}
	if envTok != "" {
		return envTok, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the admin token: %w (pass --token or set %s)", err, tokenEnv)
	}
	return strings.TrimSpace(string(b)), nil
}

// fetchStatus reads the endpoint; the body is returned as sent.
func fetchStatus(ctx context.Context, c *http.Client, url, token string) ([]byte, *query.StatusResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("status: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("ask %s: %w (is eventlake dev or eventlake query running there? see --url)", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", url, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, nil, fmt.Errorf("%s refused the token (HTTP 401): pass --token, set %s, or run from the directory whose data/%s `eventlake dev` wrote", url, tokenEnv, adminTokenFile)
	case resp.StatusCode != http.StatusOK:
		return nil, nil, fmt.Errorf("%s answered HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var st query.StatusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", url, err)
	}
	return body, &st, nil
}

// writeStatus draws the status as text.
func writeStatus(w io.Writer, url string, st *query.StatusResponse, width int) {
	ready := "no checks"
	if st.Readiness != nil {
		ready = strings.ReplaceAll(st.Readiness.Status, "_", " ")
	}
	fmt.Fprintf(w, "eventlake status  %s  %s  %s  generation %d\n", url, st.Time[:min(len(st.Time), 19)]+"Z", strings.ToUpper(ready), st.Generation)
	if st.RefreshError != "" {
		fmt.Fprintf(w, "  catalog refresh failing: %s\n", st.RefreshError)
	}
	in := st.Ingest
	fmt.Fprintf(w, "\ningest  %s rec/s   lag %s rec, oldest %s   dead letters %s\n",
		optNum(in.RecordsPerSecond, 1), optNum(in.LagRecords, 0), optSecs(in.LagSeconds), optNum(st.DLQ.Total, 0))

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "TABLE\tKIND\tSNAPSHOT\tFILES\tROWS\tROWS/S\tFRESH P50\tFRESH P95\tLAST COMMIT\t")
	for _, t := range st.Tables {
		snap := "-"
		if t.SnapshotID != nil {
			snap = *t.SnapshotID
		}
		p50, p95 := "n/a", "n/a"
		if t.Freshness != nil {
			p50, p95 = fmtSecs(t.Freshness.P50), fmtSecs(t.Freshness.P95)
		}
		last := "never"
		if t.LastCommitAgeSeconds != nil {
			last = fmtSecs(*t.LastCommitAgeSeconds) + " ago"
		}
		name := t.Name
		if t.Refused != "" {
			name += " (REFUSED)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", name, t.Kind, snap, t.DataFiles, t.Rows,
			optNum(t.RowsPerSecond, 1), p50, p95, last)
	}
	_ = tw.Flush()

	if len(st.Topics) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tREC/S\tLAG REC\tLAG AGE\t")
		for _, t := range st.Topics {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Topic, optNum(t.RecordsPerSecond, 1), optNum(t.LagRecords, 0), optSecs(t.LagSeconds))
		}
		_ = tw.Flush()
	}

	fmt.Fprintln(w)
	if st.DLQ.ByReason == nil {
		fmt.Fprintln(w, "dead letters by reason: n/a (no ingest in this process)")
	} else {
		reasons := make([]string, 0, len(st.DLQ.ByReason))
		for r := range st.DLQ.ByReason {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		parts := make([]string, 0, len(reasons))
		for _, r := range reasons {
			parts = append(parts, fmt.Sprintf("%s %.0f", r, st.DLQ.ByReason[r]))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintln(w, "dead letters by reason: "+strings.Join(parts, ", "))
	}
	models := make([]string, 0, len(st.ReadModels))
	for _, m := range st.ReadModels {
		s := m.Name + " " + m.State
		if m.Reason != "" {
			s += " (" + m.Reason + ")"
		}
		models = append(models, s)
	}
	fmt.Fprintln(w, "read models: "+strings.Join(models, ", "))
	if st.Readiness != nil {
		fmt.Fprintln(w, "\nreadiness:")
		for _, c := range st.Readiness.Components {
			mark, line := "ok ", c.Component
			if !c.Ready {
				mark, line = "NOT", c.Component+": "+c.Reason
			}
			if width > 8 && len(line) > width-6 {
				line = line[:width-7] + "…"
			}
			fmt.Fprintf(w, "  %s %s\n", mark, line)
		}
	}
}

func optNum(v *float64, decimals int) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64)
}

func optSecs(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmtSecs(*v)
}

func fmtSecs(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "s"
	case v < 3600:
		return strconv.FormatFloat(v, 'f', 0, 64) + "s"
	}
	return strconv.FormatFloat(v/3600, 'f', 1, 64) + "h"
}
