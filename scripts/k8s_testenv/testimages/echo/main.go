// Command echo is the smoke tests' "locally built image".
//
//	echo            serve HTTP on $PORT (default 8080): every request gets a JSON answer
//	                with the pod's hostname, the request path and $GREETING
//	echo get URL    (as a Job) GET the URL, print the status, exit 0 on 200
//	echo apicheck   (as a Job) call the Kubernetes API from inside the pod with the
//	                pod's service-account token, print the server version, exit 0 on 200
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "apicheck" {
		os.Exit(apicheck())
	}
	if len(os.Args) > 2 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
	}
	addr := ":" + getenv("PORT", "8080")
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"hostname": host,
			"path":     r.URL.Path,
			"greeting": os.Getenv("GREETING"),
		})
	})
	log.Printf("echo listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

func apicheck() int {
	token, err := os.ReadFile(saDir + "token")
	if err != nil {
		fmt.Println("no service-account token:", err)
		return 2
	}
	caPEM, err := os.ReadFile(saDir + "ca.crt")
	if err != nil {
		fmt.Println("no service-account CA:", err)
		return 2
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	hostPort := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	req, _ := http.NewRequest("GET", "https://"+hostPort+"/version", nil)
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println("request failed:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("GET https://%s/version -> %d %s\n", hostPort, resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Println("request failed:", err)
		return 1
	}
	defer resp.Body.Close()
	fmt.Printf("GET %s -> %d\n", url, resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func getenv(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
