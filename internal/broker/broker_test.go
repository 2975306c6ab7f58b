package broker

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPersistsAcrossRestart produces to the broker, restarts it on the same
// data directory and reads the records back.
func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, Topics: []Topic{{Name: "t", Partitions: 2}}}
	b, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	b.Close()

	b, err = Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for n < 10 {
		fs := cl.PollFetches(context.Background())
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if n != 10 {
		t.Fatalf("read %d records after restart, want 10", n)
	}
}

func TestValidate(t *testing.T) {
	for _, l := range []string{"0.0.0.0:9092", "nohostport", "127.0.0.1:99999"} {
		c := Config{Listen: l}
		c.Defaults()
		if err := c.Validate(); err == nil {
			t.Errorf("listen %q accepted", l)
		}
	}
}
