// Command crrules prints the rule groups of a PrometheusRule (its spec) as a
// Prometheus rule file, so that promtool can check the very rules the
// PrometheusRule ships:
//
//	crrules examples/monitoring/prometheusrule.yaml > rules.yaml
//	promtool check rules rules.yaml
//
// It refuses anything but exactly one monitoring.coreos.com/v1 PrometheusRule
// with only apiVersion, kind, metadata and spec at the top.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

type prometheusRule struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Metadata   yaml.Node `yaml:"metadata"`
	Spec       yaml.Node `yaml:"spec"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crrules <prometheusrule.yaml>")
		os.Exit(2)
	}
	out, err := extract(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "crrules: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

func extract(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rule prometheusRule
	if err := dec.Decode(&rule); err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("not a monitoring.coreos.com/v1 PrometheusRule: %s %s", rule.APIVersion, rule.Kind)
	}
	if rule.Spec.Kind != yaml.MappingNode {
		return nil, errors.New("spec is not a mapping")
	}
	return yaml.Marshal(&rule.Spec)
}
