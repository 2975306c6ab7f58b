package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
	"github.com/eventlake/eventlake/streamer"
)

// ReadModelsConfig is the read_models section: the declared models and
// the inputs of what is not a declaration (the windows, the enrichment,
// the orders and inventory views).
type ReadModelsConfig struct {
	lake.ModelInputs `yaml:",inline"`
	// Models are the declared read models; none means the shipped ones.
	// An entry with a name alone takes the shipped declaration of that
	// name.
	Models []readmodel.Declaration `yaml:"models"`
	// Sessions are the session windows the hot tier keeps as a table
	// (user_sessions) that declared models may read.
	Sessions streamer.SessionsConfig `yaml:"sessions"`
}

// sessionsOf resolves the sessions declaration against src: revenue
// takes the scale of the orders' column. nil: sessions are off, or the
// orders' type is not known (yet).
func sessionsOf(cfg *Config, src readmodel.Sources) (*streamer.Sessions, error) {
	c := cfg.ReadModels.Sessions
	if c.Off {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	orders, ok := src(c.Orders)
	if !ok {
		return nil, nil
	}
	t, ok := orders.Columns[c.Revenue]
	d, dec := t.(iceberg.DecimalType)
	if !ok || !dec {
		return nil, fmt.Errorf("read_models.sessions.revenue: %s's column %q must be a decimal (it is %v)", c.Orders, c.Revenue, t)
	}
	return &streamer.Sessions{SessionsConfig: c, Scale: int32(d.Scale())}, nil
}

// withSessions adds the sessions table to src as a source of models.
func withSessions(src readmodel.Sources, sess *streamer.Sessions) readmodel.Sources {
	if sess == nil {
		return src
	}
	return func(name string) (readmodel.Source, bool) {
		if name == sess.Table {
			return sess.Source(), true
		}
		return src(name)
	}
}

// declaredSessions resolves the sessions declaration against the
// registry's schemas.
func declaredSessions(cfg *Config, set *schema.Set) (*streamer.Sessions, error) {
	return sessionsOf(cfg, readmodel.SchemaSources(set, typeViews(cfg)))
}

// typeViews are the FROM names of declarations besides type names: the
// query service's type views (query.type_views, defaulted).
func typeViews(cfg *Config) map[string]string {
	views := map[string]string{}
	for v, t := range cfg.Query.TypeViews {
		views[v] = t
	}
	if len(views) == 0 {
		views["orders"] = cfg.ReadModels.Orders.Type
		views["inventory"] = cfg.ReadModels.Inventory.Type
	}
	return views
}

// declaredModels parses the configured declarations against the
// registry's schemas: a declaration outside the form stops the start
// with a message that names the part and why.
//
// The shipped models (none configured) are maintained when the registry
// has their event type: a deployment without orders runs without them.
func declaredModels(ctx context.Context, cfg *Config, set *schema.Set) ([]*readmodel.Model, error) {
	decls, err := readmodel.Resolve(cfg.ReadModels.Models)
	if err != nil {
		return nil, err
	}
	src := readmodel.SchemaSources(set, typeViews(cfg))
	sess, err := sessionsOf(cfg, src)
	if err != nil {
		return nil, err
	}
	src = withSessions(src, sess)
	if len(cfg.ReadModels.Models) == 0 {
		var out []*readmodel.Model
		for _, d := range decls {
			ms, err := readmodel.Parse(ctx, []readmodel.Declaration{d}, src)
			var fe *readmodel.FormError
			if errors.As(err, &fe) && fe.Part == "FROM" {
				continue // the registry lacks its event type
			}
			if err != nil {
				return nil, fmt.Errorf("read_models.models: %w", err)
			}
			out = append(out, ms...)
		}
		return out, nil
	}
	ms, err := readmodel.Parse(ctx, decls, src)
	if err != nil {
		return nil, fmt.Errorf("read_models.models: %w", err)
	}
	return ms, nil
}

// lakeModels parses the configured declarations against the lake's raw
// tables, for processes without the registry (backfill, the compactor's
// re-aggregation); declarations whose source the lake does not hold yet
// are left out.
func lakeModels(ctx context.Context, cfg *Config, cat *lake.Catalog) ([]*readmodel.Model, error) {
	decls, err := readmodel.Resolve(cfg.ReadModels.Models)
	if err != nil {
		return nil, err
	}
	src, err := readmodel.LakeSources(ctx, cat, typeViews(cfg))
	if err != nil {
		return nil, err
	}
	sess, err := sessionsOf(cfg, src)
	if err != nil {
		return nil, err
	}
	src = withSessions(src, sess)
	var out []*readmodel.Model
	for _, d := range decls {
		ms, err := readmodel.Parse(ctx, []readmodel.Declaration{d}, src)
		if err != nil {
			continue // its source is not in the lake (yet): nothing to recompute
		}
		out = append(out, ms...)
	}
	return out, nil
}

// modelNames are the names of the configured models (no parsing).
func modelNames(cfg *Config) []string {
	decls, err := readmodel.Resolve(cfg.ReadModels.Models)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(decls))
	for _, d := range decls {
		out = append(out, d.Name)
	}
	return out
}

// runModels lists the declared read models and their tables, or drops
// the table of a model no longer declared.
//
//	eventlake models [list]       declared models and every read-model table in the catalog
//	eventlake models drop NAME    drop the table of a model removed from read_models.models
func runModels(ctx context.Context, args []string, env *runEnv) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("models "+sub, flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs, false, false, "")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, _, err := loadConfig(&cf, env)
	if err != nil {
		return err
	}
	cat, err := openLake(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer cat.Close()
	declared := modelNames(cfg)
	if sc := cfg.ReadModels.Sessions; !sc.Off && sc.Table != "" {
		declared = append(declared, sc.Table) // kept by the hot tier (read_models.sessions)
	}
	switch sub {
	case "list":
		ns := table.Identifier{cat.Config().Namespace}
		tables := map[string]*table.Table{}
		for ident, err := range cat.Iceberg().ListTables(ctx, ns) {
			if err != nil {
				return fmt.Errorf("list tables: %w", err)
			}
			tbl, err := cat.LoadTable(ctx, ident[len(ident)-1])
			if err == nil && tbl.Properties()[lake.PropKind] == lake.KindReadModel {
				tables[ident[len(ident)-1]] = tbl
			}
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL\tDECLARED\tTABLE\tSNAPSHOT\tSQL")
		names := slices.Sorted(maps.Keys(tables))
		for _, d := range declared {
			if !slices.Contains(names, d) {
				names = append(names, d)
			}
		}
		for _, n := range names {
			tbl := tables[n]
			state, snap, sql := "not built yet", "-", "-"
			if tbl != nil {
				state = "exists"
				if s := tbl.CurrentSnapshot(); s != nil {
					snap = strconv.FormatInt(s.SnapshotID, 10)
				}
				if q := tbl.Properties()[readmodel.PropModelSQL]; q != "" {
					sql = strings.Join(strings.Fields(q), " ")
				}
			}
			dec := "no (not maintained; drop with eventlake models drop " + n + ")"
			if slices.Contains(declared, n) {
				dec = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, dec, state, snap, sql)
		}
		return tw.Flush()
	case "drop":
		if fs.NArg() != 1 {
			return usageError{"models drop: name one model: eventlake models drop NAME"}
		}
		name := fs.Arg(0)
		if slices.Contains(declared, name) {
			return fmt.Errorf("models drop: %s is declared in read_models.models (or is the sessions table, read_models.sessions): remove it there first (a committer would build it again)", name)
		}
		tbl, err := cat.LoadTable(ctx, name)
		if err != nil {
			return fmt.Errorf("models drop: %w", err)
		}
		if tbl.Properties()[lake.PropKind] != lake.KindReadModel {
			return fmt.Errorf("models drop: %s is not a read-model table (it is %q); only read models are dropped here", name, tbl.Properties()[lake.PropKind])
		}
		if err := cat.Iceberg().DropTable(ctx, cat.Ident(name)); err != nil {
			return fmt.Errorf("models drop %s: %w", name, err)
		}
		fmt.Fprintf(env.stdout, "dropped read model table %s (its data files stay under %s until removed)\n", name, tbl.Location())
		return nil
	}
	return usageError{fmt.Sprintf("models: %q is neither list nor drop", sub)}
}
