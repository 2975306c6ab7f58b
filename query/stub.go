package query

// TEMPORARY stub until the query branch is merged.

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventlake/eventlake/catalog"
)

type Config struct {
	Listen string `yaml:"listen"`
}

func (c *Config) Defaults()       {}
func (c *Config) Validate() error { return nil }

type RawTable struct{ Name, Topic, Kind string }
type Tables struct {
	Raw []RawTable
	DLQ string
}
type Deps struct {
	Catalog  *catalog.Catalog
	Tables   Tables
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
}
type Service struct{ d Deps }

func New(cfg Config, d Deps) (*Service, error) { return &Service{d}, nil }
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
func (s *Service) Handler() http.Handler {
	m := http.NewServeMux()
	m.Handle("/metrics", promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{}))
	return m
}
