package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake/objstore"
)

// TestS3ServerSideEncryption runs `eventlake dev` on an S3 warehouse with
// catalog.s3.sse set, behind a proxy that records the encryption each
// request asks for: every object of the warehouse afterwards — data files,
// manifests and metadata written by iceberg-go as well as by eventlake —
// was written asking for it.
func TestS3ServerSideEncryption(t *testing.T) {
	s3 := th.StartS3(t)
	px := th.StartHTTPFaultProxy(t, s3.Endpoint)
	px.RecordHeader("X-Amz-Server-Side-Encryption")
	env := append(s3.Env("sse"), "EVENTLAKE_CATALOG_S3_ENDPOINT="+px.URL, "EVENTLAKE_CATALOG_S3_SSE=AES256",
		"EVENTLAKE_INGEST_FLUSH_INTERVAL=300ms", "EVENTLAKE_STREAMER_COMMIT_INTERVAL=500ms", "EVENTLAKE_DEMO_RATE=300")
	dev := th.Start(t, "dev", env, "dev", "--data-dir", filepath.Join(t.TempDir(), "data"), "--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	api := "http://" + dev.Ready["http"]
	th.Eventually(t, 60*time.Second, "orders and a committed read model in the lake", func() (bool, string) {
		res, status := th.TrySQL(t, api, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_revenue_minute)")
		if status != 200 {
			return false, res.Error
		}
		return fmt.Sprint(res.Rows[0][0]) != "0" && fmt.Sprint(res.Rows[0][1]) != "0", fmt.Sprint(res.Rows[0])
	})
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop dev: %v", err)
	}

	st, err := objstore.New(context.Background(), objstore.Config{Endpoint: s3.Endpoint, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := st.List(context.Background(), s3.Bucket, "sse/")
	if err != nil {
		t.Fatal(err)
	}
	rec := px.Recorded()
	kinds := map[string]int{}
	for _, k := range keys {
		path := "/" + strings.TrimPrefix(k, "s3://")
		if rec["PUT "+path] != "AES256" && rec["POST "+path] != "AES256" {
			t.Errorf("%s was not written asking for AES256 server-side encryption", k)
		}
		switch {
		case strings.HasSuffix(k, ".parquet"):
			kinds["data"]++
		case strings.HasSuffix(k, ".avro"):
			kinds["manifest"]++
		case strings.HasSuffix(k, ".metadata.json"):
			kinds["metadata"]++
		}
	}
	if kinds["data"] == 0 || kinds["manifest"] == 0 || kinds["metadata"] == 0 {
		t.Fatalf("the warehouse holds %v (of %d objects); want data files, manifests and metadata", kinds, len(keys))
	}
}
