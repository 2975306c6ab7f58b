package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/eventlake/eventlake/internal/broker"
	"github.com/eventlake/eventlake/internal/logkey"
)

// runBroker runs the embedded Kafka-protocol broker on its own, for
// setups where ingest and producers run as separate processes.
func runBroker(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	listenAddr := fs.String("listen", "", "host:port to listen on and advertise (default 127.0.0.1:9092; port 0 picks one)")
	topics := fs.String("topics", "", "topics to create, name:partitions comma separated (default orders.created:6,inventory.updated:3)")
	syncWrites := fs.Bool("sync-writes", false, "fsync every produced batch")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	log, err := newLogger(env.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	if *listenAddr != "" {
		cfg.Broker.Listen = *listenAddr
	}
	if *syncWrites {
		cfg.Broker.SyncWrites = true
	}
	if *topics != "" {
		ts, err := parseTopics(*topics)
		if err != nil {
			return err
		}
		cfg.Broker.Topics = ts
	}
	b, err := broker.Start(cfg.Broker, log)
	if err != nil {
		return portTaken(err, "--listen")
	}
	log.Info("ready", logkey.Component, "broker", "kafka", b.Addr())
	<-ctx.Done()
	b.Close()
	return nil
}

func parseTopics(s string) ([]broker.Topic, error) {
	var out []broker.Topic
	for _, part := range splitList(s) {
		name, ps, ok := strings.Cut(part, ":")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(ps); err != nil || n < 1 {
				return nil, usageError{fmt.Sprintf("--topics: %q is not name:partitions", part)}
			}
		}
		out = append(out, broker.Topic{Name: name, Partitions: int32(n)})
	}
	return out, nil
}
