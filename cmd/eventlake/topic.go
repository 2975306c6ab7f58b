package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runTopic creates a topic: `eventlake topic create NAME [flags]`. Neither
// the embedded broker nor most production clusters create topics on first
// use, and a new event type usually starts with its topic.
func runTopic(ctx context.Context, args []string, env *runEnv) error {
	fs := flag.NewFlagSet("topic create", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, true, false, "")
	partitions := fs.Int("partitions", 3, "partitions of the topic")
	replication := fs.Int("replication-factor", -1, "replicas of each partition (-1: the broker's default)")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return parseFlags(fs, args[:1], env)
	}
	if len(args) < 2 || args[0] != "create" || len(args[1]) == 0 || args[1][0] == '-' {
		return usageError{"topic: want topic create NAME [--partitions N] [--replication-factor N] [--brokers host:port]"}
	}
	name := args[1]
	if err := parseFlags(fs, args[2:], env); err != nil {
		return err
	}
	if *partitions < 1 || *replication == 0 || *replication < -1 {
		return usageError{"topic create: --partitions must be at least 1 and --replication-factor at least 1 (or -1)"}
	}
	cfg, log, err := loadClientConfig(ctx, &cf, env)
	if err != nil {
		return err
	}
	kopts, err := cfg.Kafka.Opts(log)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateTopic(cctx, int32(*partitions), int16(*replication), nil, name)
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		fmt.Fprintf(env.stdout, "topic %s already exists\n", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	fmt.Fprintf(env.stdout, "created topic %s (%d partitions)\n", name, *partitions)
	return nil
}
