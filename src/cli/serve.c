/* cli/serve.c: `careweave serve`, the long-running server.
 *
 * Order matters: SIGINT and SIGTERM are blocked before any thread starts
 * (the store's writer, MHD's pool and http/'s workers inherit the mask), so the main thread is
 * the only one that sees them, in sigwait. The HTTP server starts before the
 * API so that port 0 can be resolved to the real port for the base URL; the
 * few microseconds in between are covered by a trampoline that answers 503.
 * Shutdown runs in reverse: stop HTTP (finishing requests in flight), free
 * the API, close the store (waiting for queued writes).
 *
 * The knowledge base (kb/) is loaded before anything is opened: a malformed
 * row refuses the start, naming its file and line. Without --kb or
 * $CAREWEAVE_KB a missing ./data/kb is only warned about (no medication can
 * then be checked); a folder that was named must be there. Nothing uses it
 * yet: the coordination rules (coord/) will. */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "access/access.h"
#include "api/api.h"
#include "audit/audit.h"
#include "cli/cli.h"
#include "coord/coord.h"
#include "hl7v2/mllp.h"
#include "hl7v2/receive.h"
#include "http/http.h"
#include "kb/kb.h"
#include "notify/notify.h"
#include "store/store.h"

#define MAX_TIMEOUT_S 86400u
/* The longest break-the-glass grant anyone may configure: a day. */
#define GLASS_MAX_MIN 1440u
/* A PEM certificate chain or key is a few KiB; anything this big is not one. */
#define TLS_FILE_MAX (1u << 20)

struct trampoline {
	_Atomic(struct api *) api;
};

static void
serve_handle(void *ctx, struct http_req *r, struct http_resp *w)
{
	struct trampoline *t = ctx;
	struct api *api = atomic_load_explicit(&t->api, memory_order_acquire);

	if (!api) {
		w->status = 503;
		w->content_type = "text/plain; charset=utf-8";
		http_resp_header(w, "Retry-After", "1");
		w->body = "starting\n";
		w->body_len = strlen(w->body);
		return;
	}
	api_handle(api, r, w);
}

/* An address http_start accepts: a literal, [v6], or localhost. */
/* "+HHMM" or "-HHMM" (or "Z") as minutes east of UTC. */
static bool
tz_of(const char *s, int *minutes)
{
	int h, m;

	if (!strcmp(s, "Z") || !strcmp(s, "UTC")) {
		*minutes = 0;
		return true;
	}
	if (strlen(s) != 5 || (s[0] != '+' && s[0] != '-'))
		return false;
	for (int i = 1; i < 5; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	h = (s[1] - '0') * 10 + (s[2] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 14 || m > 59)
		return false;
	*minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
	return true;
}

static bool
bind_ok(const char *b)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char tmp[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(b);

	if (strcmp(b, "localhost") == 0)
		return true;
	if (n >= 2 && b[0] == '[' && b[n - 1] == ']' && n - 2 < sizeof(tmp)) {
		memcpy(tmp, b + 1, n - 2);
		tmp[n - 2] = '\0';
		b = tmp;
	}
	return inet_pton(AF_INET, b, buf) == 1 || inet_pton(AF_INET6, b, buf) == 1;
}

/* Reads the holiday list of --holidays into co (coord_holidays_parse):
 * each bad line named on stderr, exit 1; unreadable, exit 3. */
#define HOLIDAYS_FILE_MAX (256u << 10)
static int
load_holidays(const char *path, struct coord *co)
{
	struct arena *a = arena_new(0);
	struct diag d;
	size_t n;
	int e, rc = CLI_OK;
	char *text;

	if (!a)
		return CLI_EIO;
	diag_init(&d, a);
	if (!(text = cli_read_file(path, HOLIDAYS_FILE_MAX, &n, &e))) {
		cli_err("serve", "cannot read the holidays %s: %s", path, strerror(e));
		rc = CLI_EIO;
	} else if (coord_holidays_parse(co, text, n, path, &d)) {
		for (size_t i = 0; i < d.n; i++)
			cli_err("serve", "%s", d.issues[i].msg);
		if (!d.n)
			cli_err("serve", "cannot read the holidays %s: out of memory", path);
		rc = d.n ? CLI_EDATA : CLI_EIO;
	} else {
		log_info("serve: %zu holidays from %s", coord_holidays(co), path);
	}
	free(text);
	arena_free(a);
	return rc;
}

static void
serve_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave serve [--db PATH] [--port N] [--bind ADDR] [--threads N]\n"
		"                       [--workers N] [--max-body BYTES] [--base-url URL]\n"
		"                       [--idle-timeout SECONDS] [--request-timeout SECONDS]\n"
		"                       [--session-idle SECONDS] [--break-glass-max-minutes N]\n"
		"                       [--tls-cert FILE --tls-key FILE] [--kb DIR]\n"
		"                       [--mllp-port N [--mllp-bind ADDR]\n"
		"                        [--mllp-tls-cert FILE --mllp-tls-key FILE]\n"
		"                        [--hl7-tz +HHMM] [--hl7-accept-test]]\n"
		"                       [--subscription-retry-ms N] [--subscription-hosts LIST]\n"
		"                       [--holidays FILE] [--tz ZONE]\n\n"
		"Serves the FHIR R4 API under /fhir until SIGINT or SIGTERM.\n\n"
		"  --key-file FILE    the database's key file\n"
		"                     (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH          database file (default %s)\n"
		"  --port N           TCP port, 0 picks a free one (default 8080)\n"
		"  --bind ADDR        IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
		"  --threads N        poll threads: read requests, serve reads, send\n"
		"                     answers; never wait (default: one per core)\n"
		"  --workers N        threads for writes (POST, PUT, DELETE), which wait\n"
		"                     for the commit; 1 to 256 (default 32)\n"
		"  --max-body BYTES   largest request body, k/M suffixes (default 16M)\n"
		"  --base-url URL     absolute base for links (default http://ADDR:PORT/fhir)\n"
		"  --idle-timeout SECONDS\n"
		"                     close a connection after this long with no bytes\n"
		"                     moving, keep-alive or mid-request (default 30)\n"
		"  --request-timeout SECONDS\n"
		"                     answer 408 and close when a request body is still\n"
		"                     arriving this long after its request line (default 60)\n"
		"  --session-idle SECONDS\n"
		"                     sign a session out after this long without a\n"
		"                     request (default %u; every session ends 12 h\n"
		"                     after sign-in)\n"
		"  --break-glass-max-minutes N\n"
		"                     the longest emergency access a clinician may claim\n"
		"                     with Patient/ID/$break-glass, 1 to %u (default %u)\n"
		"  --kb DIR           the knowledge base folder (default $CAREWEAVE_KB,\n"
		"                     else ./data/kb); a malformed row refuses the start\n"
		"  --tls-cert FILE    serve HTTPS (TLS 1.2/1.3) with this PEM certificate\n"
		"                     chain; needs --tls-key FILE, the PEM private key\n"
		"  --mllp-port N      also take HL7 v2 messages (ADT) over MLLP on this\n"
		"                     TCP port, 0 picks a free one (default: no listener)\n"
		"  --mllp-bind ADDR   address of the MLLP listener (default 127.0.0.1)\n"
		"  --mllp-tls-cert FILE, --mllp-tls-key FILE\n"
		"                     MLLP over TLS (1.2/1.3) with this PEM chain and key\n"
		"  --hl7-tz +HHMM     the feeds' local time, for date/times they send\n"
		"                     without a zone (default +0000, UTC)\n"
		"  --hl7-accept-test  also apply messages marked for training (MSH-11 T);\n"
		"                     by default they are rejected (AR)\n"
		"  (every message and its answer: 'careweave hl7 list')\n"
		"  --subscription-retry-ms N\n"
		"                     after a failed Subscription delivery, try again\n"
		"                     this much later, doubling each time up to an hour;\n"
		"                     100 to 600000 (default %u)\n"
		"  --holidays FILE    public holidays, one date YYYY-MM-DD a line ('#'\n"
		"                     comments): not business days, as weekends are not\n"
		"                     (the 2 business days of a discharge's first contact);\n"
		"                     data/holidays/us-federal.txt lists the US federal ones\n"
		"  --tz ZONE          the clinic's time zone (America/Chicago): business days\n"
		"                     are its days, not UTC's (default UTC)\n"
		"  --subscription-hosts LIST\n"
		"                     the only hosts a Subscription may send to,\n"
		"                     comma-separated names or addresses as in the URL\n"
		"                     (*.example.org: any name under it); by default any\n"
		"                     https host, and http to this machine\n"
		"\nEvery request under /fhir but GET /fhir/metadata needs a session:\n"
		"POST /auth/login with {\"username\", \"password\"} of a user made with\n"
		"'careweave user add', then send 'Authorization: Bearer TOKEN'.\n"
		"\nPrints 'careweave listening on http[s]://ADDR:PORT/fhir' once it serves,\n"
		"and before it, with --mllp-port, 'careweave mllp listening on ADDR:PORT'.\n",
		CLI_DEFAULT_DB, ACCESS_IDLE_DEFAULT_S, GLASS_MAX_MIN,
		ACCESS_GLASS_MAX_DEFAULT, (unsigned)NOTIFY_BACKOFF_MS);
}

int
cli_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"port", required_argument, NULL, 'p'},
		{"bind", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"workers", required_argument, NULL, 'w'},
		{"max-body", required_argument, NULL, 'm'},
		{"base-url", required_argument, NULL, 'u'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"request-timeout", required_argument, NULL, 'r'},
		{"session-idle", required_argument, NULL, 's'},
		{"break-glass-max-minutes", required_argument, NULL, 'g'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"kb", required_argument, NULL, 'B'},
		{"mllp-port", required_argument, NULL, 'M'},
		{"mllp-bind", required_argument, NULL, 'A'},
		{"mllp-tls-cert", required_argument, NULL, 'c'},
		{"mllp-tls-key", required_argument, NULL, 'k'},
		{"hl7-tz", required_argument, NULL, 'z'},
		{"hl7-accept-test", no_argument, NULL, 'T'},
		{"subscription-retry-ms", required_argument, NULL, 'R'},
		{"subscription-hosts", required_argument, NULL, 'Y'},
		{"holidays", required_argument, NULL, 'O'},
		{"tz", required_argument, NULL, 'Z'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *base_url = NULL;
	const char *cert_path = NULL, *key_path = NULL, *kb_path = NULL;
	const char *holidays_path = NULL, *tz = NULL;
	struct kb *kb = NULL;
	struct coord *co = NULL;
	char *cert = NULL, *key = NULL;
	struct http_options ho = {.bind = "127.0.0.1", .port = 8080,
				  .error_fn = api_error_body};
	struct trampoline tramp;
	struct http_server *srv;
	struct api_options ao = {0};
	struct access_options aco = {0};
	struct access *ac = NULL;
	struct audit *au = NULL;
	/* 8 handlers: they parse and map while the store's one writer commits
	 * (4 gave 1,600 to 2,000 known-patient ADT messages/s here, 8 gave
	 * 1,900 to 2,150: bench/README.md) */
	struct mllp_options mo = {.bind = "127.0.0.1", .workers = 8};
	struct hl7_receiver_options ro = {0};
	struct hl7_receiver *rcv = NULL;
	struct notify *nt = NULL;
	struct notify_options no = {0};
	struct notify_hooks nh;
	struct mllp *mllp = NULL;
	const char *mcert_path = NULL, *mkey_path = NULL;
	char *mcert = NULL, *mkey = NULL;
	bool mllp_on = false;
	struct store *s;
	struct arena *a;
	struct diag d;
	struct api *api;
	unsigned long long v;
	sigset_t set;
	char url[320], host[80];
	int c, sig, rc = CLI_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'p':
			if (!cli_parse_num(optarg, 0, 65535, false, &v)) {
				cli_err("serve", "--port wants a number from 0 to 65535, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			ho.port = (unsigned)v;
			break;
		case 'b':
			ho.bind = optarg;
			break;
		case 't':
			if (!cli_parse_num(optarg, 1, 256, false, &v)) {
				cli_err("serve", "--threads wants a number from 1 to 256, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			ho.threads = (unsigned)v;
			break;
		case 'w':
			if (!cli_parse_num(optarg, 1, 256, false, &v)) {
				cli_err("serve", "--workers wants a number from 1 to 256, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			ho.workers = (unsigned)v;
			break;
		case 'm':
			if (!cli_parse_num(optarg, 1, 1ull << 30, true, &v)) {
				cli_err("serve", "--max-body wants a size from 1 to 1G, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			ho.max_body = (size_t)v;
			break;
		case 'u':
			base_url = optarg;
			break;
		case 'i':
			if (!cli_parse_num(optarg, 1, MAX_TIMEOUT_S, false, &v)) {
				cli_err("serve", "--idle-timeout wants seconds from 1 to %u, not '%s'",
					MAX_TIMEOUT_S, optarg);
				return CLI_EUSAGE;
			}
			ho.conn_timeout_s = (unsigned)v;
			break;
		case 'r':
			if (!cli_parse_num(optarg, 1, MAX_TIMEOUT_S, false, &v)) {
				cli_err("serve", "--request-timeout wants seconds from 1 to %u, not '%s'",
					MAX_TIMEOUT_S, optarg);
				return CLI_EUSAGE;
			}
			ho.request_timeout_s = (unsigned)v;
			break;
		case 's':
			if (!cli_parse_num(optarg, 1, ACCESS_ABSOLUTE_S, false, &v)) {
				cli_err("serve", "--session-idle wants seconds from 1 to %u, not '%s'",
					ACCESS_ABSOLUTE_S, optarg);
				return CLI_EUSAGE;
			}
			aco.idle_s = (unsigned)v;
			break;
		case 'g':
			if (!cli_parse_num(optarg, 1, GLASS_MAX_MIN, false, &v)) {
				cli_err("serve", "--break-glass-max-minutes wants minutes from 1 to %u, not '%s'",
					GLASS_MAX_MIN, optarg);
				return CLI_EUSAGE;
			}
			aco.glass_max_min = (unsigned)v;
			break;
		case 'C':
			cert_path = optarg;
			break;
		case 'K':
			key_path = optarg;
			break;
		case 'B':
			kb_path = optarg;
			break;
		case 'M':
			if (!cli_parse_num(optarg, 0, 65535, false, &v)) {
				cli_err("serve", "--mllp-port wants a number from 0 to 65535, not '%s'",
					optarg);
				return CLI_EUSAGE;
			}
			mo.port = (unsigned)v;
			mllp_on = true;
			break;
		case 'A':
			mo.bind = optarg;
			break;
		case 'c':
			mcert_path = optarg;
			break;
		case 'k':
			mkey_path = optarg;
			break;
		case 'z':
			if (!tz_of(optarg, &ro.tz_minutes)) {
				cli_err("serve", "--hl7-tz wants an offset such as +0100 or -0500, not '%s'",
					optarg);
				return CLI_EUSAGE;
			}
			break;
		case 'T':
			ro.accept_test = true;
			break;
		case 'R':
			if (!cli_parse_num(optarg, 100, 600000, false, &v)) {
				cli_err("serve", "--subscription-retry-ms wants a number from 100 to"
					" 600000, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			no.retry_ms = (unsigned)v;
			break;
		case 'O':
			holidays_path = optarg;
			break;
		case 'Z':
			tz = optarg;
			break;
		case 'Y': {
			const char *why = notify_hosts_check(optarg);

			if (why || !*optarg) {
				cli_err("serve", "--subscription-hosts: %s",
					why ? why : "the list is empty");
				return CLI_EUSAGE;
			}
			no.endpoint_hosts = optarg;
			break;
		}
		case 'h':
			serve_usage(stdout);
			return CLI_OK;
		default:
			serve_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("serve", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!bind_ok(ho.bind)) {
		cli_err("serve", "--bind wants an IPv4 or IPv6 address, not '%s'", ho.bind);
		return CLI_EUSAGE;
	}
	if (!cert_path != !key_path) {
		cli_err("serve", "--tls-cert and --tls-key go together");
		return CLI_EUSAGE;
	}
	if (!mcert_path != !mkey_path) {
		cli_err("serve", "--mllp-tls-cert and --mllp-tls-key go together");
		return CLI_EUSAGE;
	}
	if (!mllp_on && (mcert_path || strcmp(mo.bind, "127.0.0.1"))) {
		cli_err("serve", "--mllp-bind and --mllp-tls-* need --mllp-port");
		return CLI_EUSAGE;
	}
	if (!bind_ok(mo.bind)) {
		cli_err("serve", "--mllp-bind wants an IPv4 or IPv6 address, not '%s'", mo.bind);
		return CLI_EUSAGE;
	}
	if ((rc = cli_rules_open("serve", kb_path, &kb, &co)) != CLI_OK)
		return rc;
	if (holidays_path && (rc = load_holidays(holidays_path, co)) != CLI_OK) {
		cli_rules_close(kb, co);
		return rc;
	}
	if (tz && coord_set_timezone(co, tz) != CW_OK) {
		cli_err("serve", "--tz: '%s' is not a time zone this system knows (an IANA "
			"name such as America/Chicago; Debian's tzdata)", strlen(tz) < 80 ? tz : "?");
		cli_rules_close(kb, co);
		return CLI_EUSAGE;
	}
	if (tz)
		log_info("serve: business days are the days of %s", tz);
	if (cert_path) {
		size_t n;
		int e;

		if (!(cert = cli_read_file(cert_path, TLS_FILE_MAX, &n, &e))) {
			cli_err("serve", "cannot read the certificate %s: %s", cert_path,
				strerror(e));
			cli_rules_close(kb, co);
			return CLI_EIO;
		}
		if (!(key = cli_read_file(key_path, TLS_FILE_MAX, &n, &e))) {
			cli_err("serve", "cannot read the key %s: %s", key_path, strerror(e));
			free(cert);
			cli_rules_close(kb, co);
			return CLI_EIO;
		}
		ho.tls_cert = cert;
		ho.tls_key = key;
	}
	if (mcert_path) {
		size_t n;
		int e;

		if (!(mcert = cli_read_file(mcert_path, TLS_FILE_MAX, &n, &e)) ||
		    !(mkey = cli_read_file(mkey_path, TLS_FILE_MAX, &n, &e))) {
			cli_err("serve", "cannot read %s: %s", mcert ? mkey_path : mcert_path,
				strerror(e));
			free(mcert);
			if (key)
				sodium_memzero(key, strlen(key));
			free(key);
			free(cert);
			cli_rules_close(kb, co);
			return CLI_EIO;
		}
		mo.tls_cert = mcert;
		mo.tls_key = mkey;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	s = cli_open_store("serve", db, false, key_file);
	if (!s) {
		rc = CLI_EIO;
		goto out_tls;
	}
	a = arena_new(0);
	if (!a) {
		store_close(s);
		rc = CLI_EIO;
		goto out_tls;
	}
	diag_init(&d, a);
	if (store_is_encrypted(s))
		log_info("the database %s is encrypted at rest", db);
	else
		log_warn("the data in %s is stored unencrypted: anyone who can read "
			 "the file (or a backup of it) can read the records; "
			 "see --key-file", db);
	{
		struct store_user *users;
		size_t nusers = 0;

		/* Without a user nobody can sign in: say how to make one. */
		if (store_user_list(s, a, &users, &nusers) == CW_OK && nusers == 0)
			log_warn("no users yet: nobody can sign in; create the first "
				 "with 'careweave user add --admin --username NAME'");
	}
	atomic_init(&tramp.api, NULL);
	srv = http_start(&ho, serve_handle, &tramp, &d);
	if (!srv) {
		cli_err("serve", "%s", d.n ? d.issues[0].msg : "cannot start the HTTP server");
		rc = CLI_EIO;
		goto out_store;
	}
	if (strcmp(ho.bind, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strchr(ho.bind, ':') && ho.bind[0] != '[')
		snprintf(host, sizeof(host), "[%s]", ho.bind);
	else
		snprintf(host, sizeof(host), "%s", ho.bind);
	snprintf(url, sizeof(url), "%s://%s:%u/fhir", cert ? "https" : "http",
		 host, http_port(srv));
	ao.base_url = base_url ? base_url : url;
	ac = access_new(s, &aco);
	if (!ac) {
		cli_err("serve", "cannot start sign-in (libsodium)");
		rc = CLI_EIO;
		goto out_http;
	}
	ao.access = ac;
	au = audit_new(s, NULL);
	if (!au) {
		cli_err("serve", "cannot start the audit trail");
		rc = CLI_EIO;
		goto out_http;
	}
	ao.audit = au;
	ao.coord = co;
	/* Subscriptions: matched in the write path, delivered by a thread
	 * of their own through the API's access checks and audit */
	if (!(nt = notify_new(s, &no))) {
		cli_err("serve", "cannot start Subscription delivery");
		rc = CLI_EIO;
		goto out_http;
	}
	ao.notify = nt;
	api = api_new(s, &ao);
	if (!api) {
		cli_err("serve", "cannot start the API");
		rc = CLI_EIO;
		goto out_http;
	}
	api_notify_hooks(api, &nh);
	if (notify_start(nt, &nh)) {
		cli_err("serve", "cannot start Subscription delivery");
		rc = CLI_EIO;
		goto out_api;
	}
	atomic_store_explicit(&tramp.api, api, memory_order_release);
	if (mllp_on) {
		/* the hospital feeds: through the same API and rules */
		ro.api = api;
		ro.store = s;
		ro.coord = co;
		if (!(rcv = hl7_receiver_new(&ro)) ||
		    !(mllp = mllp_start(&mo, hl7_receive, rcv, &d))) {
			cli_err("serve", "%s", d.n ? d.issues[d.n - 1].msg :
				"cannot start the MLLP listener");
			rc = CLI_EIO;
			goto out_api;
		}
		printf("careweave mllp listening on %s:%u\n", mo.bind, mllp_port(mllp));
		log_info("HL7 v2 over MLLP%s on port %u", mcert ? " (TLS)" : "", mllp_port(mllp));
	}
	printf("careweave listening on %s\n", url);
	fflush(stdout);
	log_info("serving on port %u", http_port(srv));

	sig = 0;
	sigwait(&set, &sig);
	log_info("signal %d: shutting down", sig);
out_api:
	/* the feeds first: their handler writes through the API */
	mllp_stop(mllp);
	hl7_receiver_free(rcv);
	http_stop(srv);
	srv = NULL;
	/* nothing writes now; a delivery in flight ends or times out */
	notify_free(nt);
	nt = NULL;
	api_free(api);
	goto out_audit;
out_http:
	http_stop(srv);
	notify_free(nt);
out_audit:
	/* after the server stopped, before the store closes: the queued read
	 * records are written */
	audit_free(au);
	access_free(ac);
out_store:
	store_close(s);
	arena_free(a);
out_tls:
	if (key)
		sodium_memzero(key, strlen(key));
	if (mkey)
		sodium_memzero(mkey, strlen(mkey));
	free(key);
	free(cert);
	free(mkey);
	free(mcert);
	cli_rules_close(kb, co);
	return rc;
}
