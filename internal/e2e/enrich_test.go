package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestEnrichment publishes a product catalog to the compacted
// products.changelog topic and orders with kcat, and reads orders.enriched
// back with kcat: catalog updates (a price change, a new product, a
// deletion by tombstone) are applied in order, and an unknown product is
// enriched with nulls, not dropped.
func TestEnrichment(t *testing.T) {
	kcat := th.Kcat(t)
	dir := t.TempDir()
	dev := th.Start(t, "dev", nil, "dev", "--no-demo", "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	broker, api := dev.Ready["kafka"], "http://"+dev.Ready["http"]

	send := func(topic string, lines ...string) {
		t.Helper()
		runKcat(t, kcat, []byte(strings.Join(lines, "\n")+"\n"), "-b", broker, "-t", topic, "-P", "-K", "\t")
	}
	tombstone := func(key string) {
		t.Helper()
		runKcat(t, kcat, []byte(key+"\t\n"), "-b", broker, "-t", "products.changelog", "-P", "-K", "\t", "-Z")
	}
	product := func(id, name, cat, price string) string {
		return fmt.Sprintf(`%s	{"product_id":%q,"name":%q,"category":%q,"price":%q}`, id, id, name, cat, price)
	}
	order := func(n int, product string, qty int, amount string) string {
		return fmt.Sprintf(`o%d	{"event_id":"e%d","source":"shop","type":"order.created","timestamp":"2026-11-26T10:00:%02dZ","payload":{"order_id":"o%d","user_id":"u1","product_id":%q,"quantity":%d,"amount":%q}}`,
			n, n, n, n, product, qty, amount)
	}
	catalog := func() map[string]string {
		var r struct {
			Products []struct {
				ID    string `json:"product_id"`
				Price string `json:"price"`
			} `json:"products"`
		}
		th.GetJSON(t, api+"/v1/products", &r)
		m := map[string]string{}
		for _, p := range r.Products {
			m[p.ID] = p.Price
		}
		return m
	}
	waitCatalog := func(want map[string]string) {
		t.Helper()
		th.Eventually(t, 30*time.Second, "catalog applied", func() (bool, string) {
			got := catalog()
			return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
		})
	}
	enriched := func(n int) map[string]map[string]any {
		t.Helper()
		out := map[string]map[string]any{}
		th.Eventually(t, 30*time.Second, fmt.Sprintf("%d enriched orders", n), func() (bool, string) {
			cmd := exec.Command(kcat, "-b", broker, "-t", "orders.enriched", "-C", "-e", "-q", "-o", "beginning", "-f", "%s\\n")
			b, err := cmd.Output()
			if err != nil {
				return false, err.Error()
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				// {"event_id","type","ts","order":<payload>,"product":{...}|null,
				// "revenue","list_revenue"}: flattened here for the checks.
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil {
					order, _ := m["order"].(map[string]any)
					flat := map[string]any{"revenue": m["revenue"], "list_revenue": m["list_revenue"], "amount": order["amount"]}
					if p, ok := m["product"].(map[string]any); ok {
						flat["product_name"], flat["category"], flat["product_price"] = p["name"], p["category"], p["price"]
					}
					out[fmt.Sprint(order["order_id"])] = flat
				}
			}
			return len(out) >= n, fmt.Sprintf("%d records", len(out))
		})
		return out
	}

	send("products.changelog",
		product("p1", "Kettle", "kitchen", "10.00"),
		product("p2", "Ball", "toys", "5.00"),
		product("p3", "Pen", "office", "1.00"),
		product("p2", "Ball", "toys", "6.00"), // two updates of one product, in order
		product("p2", "Ball", "toys", "7.00"))
	waitCatalog(map[string]string{"p1": "10.00", "p2": "7.00", "p3": "1.00"})
	send("orders.created", order(1, "p1", 2, "19.00"), order(2, "p9", 1, "3.00"))
	got := enriched(2)
	if o := got["o1"]; o["product_name"] != "Kettle" || o["category"] != "kitchen" || o["product_price"] != "10.00" ||
		o["list_revenue"] != "20.00" || o["revenue"] != "19.00" || o["amount"] != "19.00" {
		t.Fatalf("o1 enriched as %v", o)
	}
	if o := got["o2"]; o["product_name"] != nil || o["product_price"] != nil || o["category"] != nil || o["revenue"] != "3.00" {
		t.Fatalf("o2 (unknown product) enriched as %v, want null product fields", o)
	}

	// Price change, new product, deletion.
	send("products.changelog", product("p1", "Kettle", "kitchen", "12.50"), product("p4", "Lamp", "home", "30.00"))
	tombstone("p3")
	waitCatalog(map[string]string{"p1": "12.50", "p2": "7.00", "p4": "30.00"})
	send("orders.created", order(3, "p1", 1, "12.50"), order(4, "p4", 1, "30.00"), order(5, "p3", 1, "1.00"))
	got = enriched(5)
	if o := got["o3"]; o["product_price"] != "12.50" || o["list_revenue"] != "12.50" {
		t.Fatalf("o3 after the price change enriched as %v", o)
	}
	if o := got["o4"]; o["product_name"] != "Lamp" || o["product_price"] != "30.00" {
		t.Fatalf("o4 (new product) enriched as %v", o)
	}
	if o := got["o5"]; o["product_name"] != nil || o["product_price"] != nil {
		t.Fatalf("o5 (deleted product) enriched as %v, want nulls", o)
	}
	if m := httpGet(t, api+"/metrics"); !strings.Contains(m, "eventlake_streamer_unknown_products_total 2") {
		t.Fatalf("unknown products not counted twice:\n%s", grepLines(m, "unknown_products"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
