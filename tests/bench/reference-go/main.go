// The plain reference client of `deno task bench`: the work of one KubeECR
// run, done with nothing but Go's standard library (net/http, HTTP/2 over
// TLS as KubeECR's Deno client negotiates it with the API server), so the
// bench can compare KubeECR with what a plain client of a compiled language
// costs for exactly the same requests.
//
// The same requests as KubeECR, in the same order (and as reference.ts):
//   - a paginated list of type=kubernetes.io/dockerconfigjson Secrets across
//     all namespaces, limit=500;
//   - ECR GetAuthorizationToken once per region that has a due Secret, when
//     the first such Secret needs it (SigV4-signed);
//   - per due Secret a JSON merge patch carrying the resourceVersion read
//     (409 → read again, up to 3 attempts) and then one Event (none with
//     --no-events);
//   - at most --concurrency Secrets in flight, while the next page is read.
//
// Not a product: no kubeconfig parsing, no in-place JSON edits, no retries
// beyond 409. Prints one JSON line with what it did, as reference.ts does.
//
//	reference --server https://127.0.0.1:6443 --ca ca.pem --cert admin.pem --key admin-key.pem \
//	  [--concurrency 4] [--force] [--no-events] [--http1]
//	AWS_ENDPOINT_URL_ECR, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	annotation     = "deft.com/kubeecr"
	refreshedAt    = "kubeecr.deft.com/refreshed-at"
	expiresAtKey   = "kubeecr.deft.com/expires-at"
	dockerKey      = ".dockerconfigjson"
	refreshWindow  = 6 * time.Hour
	getTokenTarget = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	json11         = "application/x-amz-json-1.1"
)

var item = regexp.MustCompile(`^(\d{12})/([a-z]{2}(?:-[a-z]+)+-\d)$`)

type registry struct{ host, region string }

type secretJSON struct {
	Metadata struct {
		Namespace       string            `json:"namespace"`
		Name            string            `json:"name"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

type listJSON struct {
	Items    []secretJSON `json:"items"`
	Metadata struct {
		Continue string `json:"continue"`
	} `json:"metadata"`
}

type job struct {
	namespace, name, uid, resourceVersion string
	registries                            []registry
	config                                string
}

type token struct {
	password  string
	expiresAt time.Time
}

type counts struct {
	Lists     int64 `json:"lists"`
	Annotated int64 `json:"annotated"`
	Invalid   int64 `json:"invalid"`
	Fresh     int64 `json:"fresh"`
	Patched   int64 `json:"patched"`
	Conflicts int64 `json:"conflicts"`
	Events    int64 `json:"events"`
	Failed    int64 `json:"failed"`
	EcrCalls  int64 `json:"ecrCalls"`
	ListBytes int64 `json:"listBytes"`
	// The protocol the API server's answers came in, e.g. "HTTP/2.0".
	Proto string `json:"proto"`
}

var (
	server   = flag.String("server", "", "API server URL")
	caFile   = flag.String("ca", "", "CA certificate (PEM)")
	certFile = flag.String("cert", "", "client certificate (PEM)")
	keyFile  = flag.String("key", "", "client key (PEM)")
	conc     = flag.Int("concurrency", 4, "Secrets in flight")
	force    = flag.Bool("force", false, "refresh every annotated Secret")
	noEvents = flag.Bool("no-events", false, "no Event per Secret")
	http1    = flag.Bool("http1", false, "HTTP/1.1 instead of HTTP/2")

	client    *http.Client
	c         counts
	protoOnce sync.Once
	now       = time.Now()
)

func main() {
	flag.Parse()
	client = newClient()
	tokens := newTokens()
	sem := make(chan struct{}, *conc)
	var wg sync.WaitGroup
	listPath := "/api/v1/secrets?fieldSelector=" +
		url.QueryEscape("type=kubernetes.io/dockerconfigjson") + "&limit=500"
	cont := ""
	for {
		path := listPath
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		var page listJSON
		n, _, err := call("GET", path, "", nil, &page)
		if err != nil {
			fail(err)
		}
		atomic.AddInt64(&c.Lists, 1)
		atomic.AddInt64(&c.ListBytes, int64(n))
		for _, s := range page.Items {
			value, ok := s.Metadata.Annotations[annotation]
			if !ok {
				continue
			}
			atomic.AddInt64(&c.Annotated, 1)
			regs := registriesOf(value)
			if regs == nil {
				atomic.AddInt64(&c.Invalid, 1)
				continue
			}
			config := decode(s.Data[dockerKey])
			if !*force && isFresh(&s, regs, config) {
				atomic.AddInt64(&c.Fresh, 1)
				continue
			}
			j := job{s.Metadata.Namespace, s.Metadata.Name, s.Metadata.UID,
				s.Metadata.ResourceVersion, regs, config}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := refresh(j, tokens); err != nil {
					atomic.AddInt64(&c.Failed, 1)
					fmt.Fprintf(os.Stderr, "failed %s/%s: %v\n", j.namespace, j.name, err)
				}
			}()
		}
		cont = page.Metadata.Continue
		if cont == "" {
			break
		}
	}
	wg.Wait()
	out, _ := json.Marshal(&c)
	fmt.Println(string(out))
	if c.Failed > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func newClient() *http.Client {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err)
	}
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fail(err)
	}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		MaxIdleConnsPerHost: *conc + 1,
		// A custom TLS config turns net/http's automatic HTTP/2 off; the API
		// server offers h2 and KubeECR's client takes it: so does this one.
		ForceAttemptHTTP2: !*http1,
	}
	if *http1 {
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: t}
}

// call sends one request to the API server; 2xx bodies are decoded into out.
// Returns the body's length and the status.
func call(method, path, contentType string, body any, out any) (int, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, *server+path, rd)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubeecr-bench-go")
	if body != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	protoOnce.Do(func() { c.Proto = res.Proto })
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, res.StatusCode, err
	}
	if res.StatusCode/100 != 2 {
		return len(data), res.StatusCode, nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return len(data), res.StatusCode, err
		}
	}
	return len(data), res.StatusCode, nil
}

func registriesOf(value string) []registry {
	var out []registry
	for _, it := range strings.Split(value, ",") {
		m := item.FindStringSubmatch(strings.TrimSpace(it))
		if m == nil {
			return nil
		}
		suffix := "amazonaws.com"
		if strings.HasPrefix(m[2], "cn-") {
			suffix = "amazonaws.com.cn"
		}
		out = append(out, registry{m[1] + ".dkr.ecr." + m[2] + "." + suffix, m[2]})
	}
	return out
}

func decode(b64 string) string {
	b, _ := base64.StdEncoding.DecodeString(b64)
	return string(b)
}

func authsOf(config string) map[string]map[string]any {
	var doc struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if strings.TrimSpace(config) != "" {
		_ = json.Unmarshal([]byte(config), &doc)
	}
	return doc.Auths
}

func isFresh(s *secretJSON, regs []registry, config string) bool {
	expires, err := time.Parse(time.RFC3339, s.Metadata.Annotations[expiresAtKey])
	if err != nil || !expires.After(now.Add(refreshWindow)) {
		return false
	}
	auths := authsOf(config)
	for _, r := range regs {
		a := auths[r.host]
		if a == nil || (a["auth"] == nil && a["password"] == nil) {
			return false
		}
	}
	return true
}

func merged(config string, creds []registry, passwords []string) string {
	doc := map[string]any{}
	if strings.TrimSpace(config) != "" {
		_ = json.Unmarshal([]byte(config), &doc)
	}
	auths, _ := doc["auths"].(map[string]any)
	if auths == nil {
		auths = map[string]any{}
		doc["auths"] = auths
	}
	for i, r := range creds {
		entry, _ := auths[r.host].(map[string]any)
		if entry == nil {
			entry = map[string]any{}
		}
		entry["username"] = "AWS"
		entry["password"] = passwords[i]
		entry["auth"] = base64.StdEncoding.EncodeToString([]byte("AWS:" + passwords[i]))
		auths[r.host] = entry
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// --- ECR -------------------------------------------------------------------

type tokenCache struct {
	mu sync.Mutex
	m  map[string]*tokenCall
}

type tokenCall struct {
	once sync.Once
	t    token
	err  error
}

func newTokens() *tokenCache { return &tokenCache{m: map[string]*tokenCall{}} }

// forRegion fetches a region's token once, when its first Secret needs it.
func (tc *tokenCache) forRegion(region string) (token, error) {
	tc.mu.Lock()
	call := tc.m[region]
	if call == nil {
		call = &tokenCall{}
		tc.m[region] = call
	}
	tc.mu.Unlock()
	call.once.Do(func() { call.t, call.err = fetchToken(region) })
	return call.t, call.err
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func fetchToken(region string) (token, error) {
	atomic.AddInt64(&c.EcrCalls, 1)
	endpoint := os.Getenv("AWS_ENDPOINT_URL_ECR")
	if endpoint == "" {
		endpoint = "https://api.ecr." + region + ".amazonaws.com"
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return token{}, err
	}
	body := "{}"
	amzDate := time.Now().UTC().Format("20060102T150405Z")
	day := amzDate[:8]
	scope := day + "/" + region + "/ecr/aws4_request"
	signed := "content-type;host;x-amz-date;x-amz-target"
	canonical := strings.Join([]string{"POST", "/", "",
		"content-type:" + json11, "host:" + u.Host, "x-amz-date:" + amzDate,
		"x-amz-target:" + getTokenTarget, "", signed, sha256Hex(body)}, "\n")
	toSign := strings.Join([]string{"AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonical)}, "\n")
	key := []byte("AWS4" + os.Getenv("AWS_SECRET_ACCESS_KEY"))
	for _, part := range []string{day, region, "ecr", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	signature := hex.EncodeToString(hmacSHA256(key, toSign))
	req, err := http.NewRequest("POST", u.ResolveReference(&url.URL{Path: "/"}).String(),
		strings.NewReader(body))
	if err != nil {
		return token{}, err
	}
	req.Header.Set("Content-Type", json11)
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Target", getTokenTarget)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+
		os.Getenv("AWS_ACCESS_KEY_ID")+"/"+scope+", SignedHeaders="+signed+", Signature="+signature)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return token{}, err
	}
	defer res.Body.Close()
	var answer struct {
		Type string `json:"__type"`
		Data []struct {
			AuthorizationToken string  `json:"authorizationToken"`
			ExpiresAt          float64 `json:"expiresAt"`
		} `json:"authorizationData"`
	}
	if err := json.NewDecoder(res.Body).Decode(&answer); err != nil {
		return token{}, err
	}
	if res.StatusCode != 200 || len(answer.Data) == 0 || answer.Data[0].AuthorizationToken == "" {
		return token{}, fmt.Errorf("ECR %s: HTTP %d %s", region, res.StatusCode, answer.Type)
	}
	decoded := decode(answer.Data[0].AuthorizationToken)
	return token{
		password:  decoded[strings.IndexByte(decoded, ':')+1:],
		expiresAt: time.Unix(int64(answer.Data[0].ExpiresAt), 0),
	}, nil
}

// --- patch + event ---------------------------------------------------------

func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func refresh(j job, tokens *tokenCache) error {
	passwords := make([]string, len(j.registries))
	var expires time.Time
	for i, r := range j.registries {
		t, err := tokens.forRegion(r.region)
		if err != nil {
			return err
		}
		passwords[i] = t.password
		if i == 0 || t.expiresAt.Before(expires) {
			expires = t.expiresAt
		}
	}
	path := "/api/v1/namespaces/" + j.namespace + "/secrets/" + j.name
	rv, config := j.resourceVersion, j.config
	for attempt := 1; ; attempt++ {
		patch := map[string]any{
			"metadata": map[string]any{
				"resourceVersion": rv,
				"annotations": map[string]string{
					refreshedAt: rfc3339(now), expiresAtKey: rfc3339(expires),
				},
			},
			"data": map[string]string{
				dockerKey: base64.StdEncoding.EncodeToString(
					[]byte(merged(config, j.registries, passwords))),
			},
		}
		_, status, err := call("PATCH", path+"?fieldManager=kubeecr",
			"application/merge-patch+json", patch, nil)
		if err != nil {
			return err
		}
		if status != 409 {
			if status/100 != 2 {
				return fmt.Errorf("PATCH %s: HTTP %d", path, status)
			}
			break
		}
		atomic.AddInt64(&c.Conflicts, 1)
		if attempt == 3 {
			return fmt.Errorf("%s: 409 three times", path)
		}
		var s secretJSON
		if _, status, err := call("GET", path, "", nil, &s); err != nil || status != 200 {
			return fmt.Errorf("GET %s: HTTP %d %v", path, status, err)
		}
		rv, config = s.Metadata.ResourceVersion, decode(s.Data[dockerKey])
	}
	atomic.AddInt64(&c.Patched, 1)
	if *noEvents {
		return nil
	}
	hosts := make([]string, len(j.registries))
	for i, r := range j.registries {
		hosts[i] = r.host
	}
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z")
	event := map[string]any{
		"metadata": map[string]any{"generateName": j.name + ".", "namespace": j.namespace},
		"involvedObject": map[string]any{
			"apiVersion": "v1", "kind": "Secret",
			"namespace": j.namespace, "name": j.name, "uid": j.uid,
		},
		"type":   "Normal",
		"reason": "Refreshed",
		"message": "Refreshed ECR credentials for " + strings.Join(hosts, ", ") +
			"; they expire at " + rfc3339(expires),
		"source":             map[string]string{"component": "kubeecr"},
		"reportingComponent": "kubeecr",
		"reportingInstance":  "kubeecr",
		"firstTimestamp":     ts,
		"lastTimestamp":      ts,
		"count":              1,
	}
	_, status, err := call("POST", "/api/v1/namespaces/"+j.namespace+"/events", "", event, nil)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("POST event %s: HTTP %d", path, status)
	}
	atomic.AddInt64(&c.Events, 1)
	return nil
}
