package lake

import (
	_ "embed"
	"errors"

	"go.yaml.in/yaml/v3"
)

// ModelInputs say which events and columns the hot tier's windows and
// the order enrichment read, and which types the orders and inventory
// views stand for. The defaults live in models.yaml (embedded), next to
// the schemas they refer to, so that Go code names no payload field.
type ModelInputs struct {
	Orders    OrderInputs     `yaml:"orders"`
	Inventory InventoryInputs `yaml:"inventory"`
}

// OrderInputs are the columns of the orders the revenue and activity read
// models, windows and enrichment read.
type OrderInputs struct {
	Type     string `yaml:"type"`
	Topic    string `yaml:"topic"`
	Key      string `yaml:"key"`
	Amount   string `yaml:"amount"`
	User     string `yaml:"user"`
	Product  string `yaml:"product"`
	Quantity string `yaml:"quantity"`
}

// InventoryInputs say where stock changes are: the type the inventory
// view (query.type_views) stands for, and the topic `eventlake produce`
// sends them to. (inventory_health is a declaration; it names its own
// columns.)
type InventoryInputs struct {
	Type  string `yaml:"type"`
	Topic string `yaml:"topic"`
}

//go:embed models.yaml
var modelsYAML []byte

// Defaults fills unset inputs from models.yaml.
func (m *ModelInputs) Defaults() {
	var d ModelInputs
	// A defect in the embedded file leaves the defaults empty, which
	// Validate reports (and TestModelInputsDefaults catches first).
	_ = yaml.Unmarshal(modelsYAML, &d)
	fill := func(dst *string, def string) {
		if *dst == "" {
			*dst = def
		}
	}
	fill(&m.Orders.Type, d.Orders.Type)
	fill(&m.Orders.Topic, d.Orders.Topic)
	fill(&m.Orders.Key, d.Orders.Key)
	fill(&m.Orders.Amount, d.Orders.Amount)
	fill(&m.Orders.User, d.Orders.User)
	fill(&m.Orders.Product, d.Orders.Product)
	fill(&m.Orders.Quantity, d.Orders.Quantity)
	fill(&m.Inventory.Type, d.Inventory.Type)
	fill(&m.Inventory.Topic, d.Inventory.Topic)
}

// Validate checks that every input is named.
func (m *ModelInputs) Validate() error {
	for name, v := range map[string]string{
		"orders.type": m.Orders.Type, "orders.topic": m.Orders.Topic, "orders.key": m.Orders.Key,
		"orders.amount": m.Orders.Amount, "orders.user": m.Orders.User, "orders.product": m.Orders.Product, "orders.quantity": m.Orders.Quantity,
		"inventory.type": m.Inventory.Type, "inventory.topic": m.Inventory.Topic,
	} {
		if v == "" {
			return errors.New("read_models." + name + " must not be empty")
		}
	}
	return nil
}
