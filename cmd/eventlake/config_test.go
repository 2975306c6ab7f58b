package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStreamCoalesce: stream.coalesce defaults to 250ms, is read from the
// file's stream: section and from EVENTLAKE_STREAM_COALESCE (which wins),
// 0 is kept (coalescing off, not the default), and a negative value is
// refused with a message that names the setting.
func TestStreamCoalesce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "eventlake.yaml")
	if err := os.WriteFile(file, []byte("stream:\n  coalesce: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		env        []string
		want       time.Duration
		err        string
	}{
		{name: "default", want: 250 * time.Millisecond},
		{name: "file", file: file, want: time.Second},
		{name: "environment over file", file: file, env: []string{"EVENTLAKE_STREAM_COALESCE=100ms"}, want: 100 * time.Millisecond},
		{name: "off", env: []string{"EVENTLAKE_STREAM_COALESCE=0"}, want: 0},
		{name: "negative", env: []string{"EVENTLAKE_STREAM_COALESCE=-250ms"}, want: -250 * time.Millisecond, err: "stream.coalesce -250ms is negative; 0 turns coalescing off"},
		{name: "too short", env: []string{"EVENTLAKE_STREAM_COALESCE=1ms"}, want: time.Millisecond, err: "stream.coalesce 1ms is below 10ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := &commonFlags{config: tc.file, dataDir: dir}
			cfg, _, err := loadConfig(cf, &runEnv{stdout: io.Discard, stderr: io.Discard, environ: tc.env})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Stream.Coalesce == nil || *cfg.Stream.Coalesce != tc.want {
				t.Fatalf("stream.coalesce = %v, want %v", cfg.Stream.Coalesce, tc.want)
			}
			err = cfg.Stream.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}
