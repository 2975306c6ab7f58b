package streamer

import (
	"context"
	"testing"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
)

// legacyInventoryDef is the inventory_health table of versions before it
// was a declaration (lake.InventoryHealthDef then).
func legacyInventoryDef(name string) lake.TableDef {
	return lake.TableDef{
		Name: name,
		Schema: iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: "product_id", Type: iceberg.PrimitiveTypes.String, Required: true},
			iceberg.NestedField{ID: 2, Name: "stock", Type: iceberg.PrimitiveTypes.Int64, Required: true},
			iceberg.NestedField{ID: 3, Name: "updated_at", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
			iceberg.NestedField{ID: 4, Name: "warehouse", Type: iceberg.PrimitiveTypes.String},
		),
		Spec:       *iceberg.UnpartitionedSpec,
		Properties: lake.ReadModelProperties("inventory_health"),
	}
}

// TestLegacyInventory: only the earlier inventory_health table is
// recognised as the one to replace; a table of the declared model, one
// of another name or of other columns, and one that is not a read model
// are not.
func TestLegacyInventory(t *testing.T) {
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(t.TempDir())
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	var decl readmodel.Declaration
	for _, d := range readmodel.Shipped() {
		if d.Name == "inventory_health" {
			decl = d
		}
	}
	ms, err := readmodel.Parse(ctx, []readmodel.Declaration{decl, {Name: "declared_inventory", SQL: decl.SQL}}, func(string) (readmodel.Source, bool) {
		return readmodel.Source{Type: "inventory.updated", Columns: map[string]iceberg.Type{
			"product_id": iceberg.PrimitiveTypes.String, "warehouse": iceberg.PrimitiveTypes.String,
			"stock": iceberg.PrimitiveTypes.Int64, "delta": iceberg.PrimitiveTypes.Int64,
		}}, true
	})
	if err != nil {
		t.Fatal(err)
	}
	otherCols := legacyInventoryDef("inventory_health_x")
	otherCols.Schema = iceberg.NewSchema(0, append(otherCols.Schema.Fields(),
		iceberg.NestedField{ID: 5, Name: "extra", Type: iceberg.PrimitiveTypes.String})...)
	notModel := legacyInventoryDef("not_model")
	notModel.Properties = lake.ReadModelProperties("inventory_health")
	notModel.Properties[lake.PropKind] = lake.KindAuditLog
	for _, tc := range []struct {
		def  lake.TableDef
		as   string // the model name it is loaded for
		want bool
	}{
		{legacyInventoryDef("inventory_health"), "inventory_health", true},
		{legacyInventoryDef("old_copy"), "old_copy", false}, // the legacy layout under another name
		{ms[1].TableDef(), "declared_inventory", false},
		{otherCols, "inventory_health", false},
		{notModel, "inventory_health", false},
	} {
		tbl, err := cat.EnsureTable(ctx, tc.def)
		if err != nil {
			t.Fatal(err)
		}
		if got := legacyInventory(tc.as, tbl); got != tc.want {
			t.Errorf("table %s loaded as %s: legacy %v, want %v", tc.def.Name, tc.as, got, tc.want)
		}
	}
	// The declared model finds the legacy table incompatible (the start
	// replaces it) and its own compatible.
	legacy, _ := cat.LoadTable(ctx, "inventory_health")
	if err := ms[0].Compatible(legacy.Properties(), legacy.Schema()); err == nil {
		t.Error("the declared inventory_health accepts the legacy table")
	}
	own, _ := cat.LoadTable(ctx, "declared_inventory")
	if err := ms[1].Compatible(own.Properties(), own.Schema()); err != nil {
		t.Errorf("the declared model refuses its own table: %v", err)
	}
}
