package readmodel

import (
	_ "embed"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed shipped.yaml
var shippedYAML []byte

// Shipped are the declarations eventlake ships (shipped.yaml).
func Shipped() []Declaration {
	var out []Declaration
	// A defect in the embedded file is caught by TestShippedParse.
	_ = yaml.Unmarshal(shippedYAML, &out)
	return out
}

// Resolve turns the configured declarations into the ones to maintain:
// none configured means the shipped ones; an entry with a name and no SQL
// takes the shipped declaration of that name.
func Resolve(configured []Declaration) ([]Declaration, error) {
	shipped := Shipped()
	if len(configured) == 0 {
		return shipped, nil
	}
	byName := map[string]Declaration{}
	for _, d := range shipped {
		byName[d.Name] = d
	}
	out := make([]Declaration, 0, len(configured))
	for _, d := range configured {
		if d.SQL == "" {
			s, ok := byName[d.Name]
			if !ok {
				names := make([]string, 0, len(shipped))
				for _, s := range shipped {
					names = append(names, s.Name)
				}
				return nil, fmt.Errorf("read_models.models: %q has no sql and is not a shipped model (shipped: %s)", d.Name, strings.Join(names, ", "))
			}
			d = s
		}
		out = append(out, d)
	}
	return out, nil
}
