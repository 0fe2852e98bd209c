/* tests/unit/kb/test_kb.c: the knowledge base (src/kb) against data/kb.
 *
 * Every file loads; malformed rows are refused with file, line and reason
 * (each check of the loader on a copy of the real files with one bad line
 * added); the reference lists of ../shared/kb are all there (every ONC
 * high-priority pair member by member, the other pairs, the
 * non-interruptive pairs, the allergy groups, the lab tests: their lists
 * are copied below, so the test does not need the shared folder); every
 * interaction and class of the files has a positive case and a nearby
 * negative one; medication and allergy text maps as the README says; labs
 * and their panels and retest intervals. Run from the repository root (make
 * unit does), where data/kb and data/demo are. */
#include <jansson.h>
#include <sys/stat.h>

#include "unit.h"

#include "kb/kb.h"
#include "kb/kb_int.h"

#define KB_DIR "data/kb"

static struct kb *kb;

static int
setup_kb(void **state)
{
	enum cw_err err;

	kb = kb_load(KB_DIR, NULL, NULL, &err);
	return kb && err == CW_OK ? 0 : -1;
}

static int
teardown_kb(void **state)
{
	kb_free(kb);
	kb = NULL;
	return 0;
}

static int
drug(const char *name)
{
	int d = kb_find_drug(kb, name);

	if (d < 0)
		fail_msg("the kb has no drug '%s'", name);
	return d;
}

static int
cls(const char *name)
{
	int c = kb_find_class(kb, name);

	if (c < 0)
		fail_msg("the kb has no class '%s'", name);
	return c;
}

/* A mapping of one drug, as kb_map_medication makes them. */
static struct kb_mapping
one(unsigned d)
{
	struct kb_mapping m = {.status = KB_MAPPED, .n = 1};

	m.ref[0] = (struct kb_ref){KB_REF_DRUG, KB_VIA_NAME, (uint16_t)d};
	return m;
}

/* Whether the rule with this id fires between drugs x and y. */
static bool
fires(unsigned x, unsigned y, const char *id)
{
	struct kb_mapping a = one(x), b = one(y);
	struct kb_ddi_hit h[32];
	size_t n = kb_interactions(kb, &a, &b, h, 32);

	assert_true(n <= 32);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(h[i].rule->id, id) == 0)
			return true;
	}
	return false;
}

/* ---- loading ---------------------------------------------------------- */

static void
test_loads(void **state)
{
	struct kb_counts n;

	kb_count(kb, &n);
	assert_true(n.drugs >= 200);
	assert_true(n.classes >= 60);
	assert_true(n.interactions >= 48);
	assert_true(n.allergy_rules >= 12);
	assert_true(n.labs >= 24);
	assert_true(n.retest_rules >= 28);
	assert_true(n.products >= 40);
	/* every row names its source; the loader refuses one that does not,
	 * so here only that the texts are reachable */
	assert_non_null(kb_source_text(kb, "onc-hp"));
	assert_null(kb_source_text(kb, "nope"));
	/* unverified codes keep their flag */
	assert_string_equal(kb_drug_at(kb, (unsigned)drug("amiodarone"))->code_status,
			    "unverified");
	assert_string_equal(kb_drug_at(kb, (unsigned)drug("warfarin"))->code_status,
			    "verified");
	assert_string_equal(kb_drug_at(kb, (unsigned)drug("gabapentin"))->rxcui, "");
	assert_string_equal(kb_drug_at(kb, (unsigned)drug("gabapentin"))->code_status,
			    "unknown");
}

/* A copy of data/kb in a temporary folder, with extra appended to file;
 * loads it and expects a failure whose reports contain want (with the
 * line number of the appended line substituted for %u, if any). */
struct reports {
	char buf[8192];
	size_t n;
	unsigned count;
};

static void
collect(void *arg, const char *msg)
{
	struct reports *r = arg;
	int k = snprintf(r->buf + r->n, sizeof(r->buf) - r->n, "%s\n", msg);

	if (k > 0 && r->n + (size_t)k < sizeof(r->buf))
		r->n += (size_t)k;
	r->count++;
}

static const char *const files[] = {"sources.tsv", "classes.tsv", "drugs.tsv",
				    "products.tsv", "interactions.tsv", "allergy.tsv",
				    "labs.tsv", "lab-retest.tsv", "comorbidity-groups.tsv",
				    "comorbidity.tsv"};

static unsigned
copy_file(const char *from, const char *to, const char *replace_header)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char line[8192];
	unsigned lines = 0;
	bool header_done = false;

	assert_non_null(in);
	assert_non_null(out);
	while (fgets(line, sizeof(line), in)) {
		lines++;
		if (replace_header && !header_done && line[0] != '#') {
			fputs(replace_header, out);
			header_done = true;
			continue;
		}
		fputs(line, out);
	}
	fclose(in);
	fclose(out);
	return lines;
}

static void
expect_refused(const char *file, const char *extra, const char *header,
	       const char *want)
{
	char dir[64] = "/tmp/cw-kb-XXXXXX", p[256], q[256], w[512];
	struct reports r = {0};
	unsigned lines = 0;
	enum cw_err err;
	struct kb *k;

	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), KB_DIR "/%s", files[i]);
		snprintf(q, sizeof(q), "%s/%s", dir, files[i]);
		if (strcmp(files[i], file) == 0) {
			lines = copy_file(p, q, header);
			if (extra) {
				FILE *f = fopen(q, "ab");

				assert_non_null(f);
				fputs(extra, f);
				fclose(f);
			}
		} else {
			copy_file(p, q, NULL);
		}
	}
	k = kb_load(dir, collect, &r, &err);
	unit_rm_dir(dir);
	if (k) {
		kb_free(k);
		fail_msg("%s with '%s' should be refused", file, extra ? extra : header);
	}
	assert_int_equal(err, CW_EINVALID);
	/* the message is "DIR/FILE:LINE: reason" */
	snprintf(w, sizeof(w), "/%s:%u: %s", file, lines + 1, want);
	if (!strstr(r.buf, w))
		fail_msg("wanted '%s' in:\n%s", w, r.buf);
}

static void
test_malformed(void **state)
{
	expect_refused("interactions.tsv",
		       "x1\twarfarin\taspirin\tsevere\tyes\tbleeding\tavoid\tonc-hp\n", NULL,
		       "the severity 'severe' is not high, moderate or low");
	expect_refused("interactions.tsv", "x1\twarfarin\taspirin\thigh\n", NULL,
		       "4 columns, expected 8 (tab-separated)");
	expect_refused("interactions.tsv",
		       "x1\twarfarin\tfrobnicate\thigh\tyes\tbleeding\tavoid\tonc-hp\n", NULL,
		       "'frobnicate' (b) is neither a drug of drugs.tsv nor a class");
	expect_refused("interactions.tsv",
		       "x1\tNSAIDs\twarfarin\thigh\tyes\tbleeding\tavoid\tonc-hp\n", NULL,
		       "the pair NSAIDs / warfarin is there already (warfarin-nsaids)");
	expect_refused("interactions.tsv",
		       "onc1\twarfarin\taspirin\thigh\tyes\tbleeding\tavoid\tonc-hp\n", NULL,
		       "the id 'onc1' is there twice");
	expect_refused("interactions.tsv",
		       "x1\twarfarin\taspirin\thigh\tmaybe\tbleeding\tavoid\tonc-hp\n", NULL,
		       "interruptive is 'maybe', not yes or no");
	expect_refused("interactions.tsv",
		       "x1\twarfarin\taspirin\thigh\tyes\tbleeding\tavoid\t\n", NULL,
		       "no source");
	expect_refused("interactions.tsv",
		       "x1\twarfarin\taspirin\thigh\tyes\tbleeding\tavoid\tmy-memory\n", NULL,
		       "the source 'my-memory' is not in sources.tsv");
	expect_refused("drugs.tsv", "newdrug\t\tunknown\t\tfrobnicators\tatc\n", NULL,
		       "the class 'frobnicators' is not in classes.tsv");
	expect_refused("drugs.tsv", "newdrug\t\tunknown\tCoumadin\t\tatc\n", NULL,
		       "the name 'Coumadin' already names the drug 'warfarin'");
	expect_refused("drugs.tsv", "newdrug\t11289\tverified\t\t\tatc\n", NULL,
		       "the RxCUI 11289 already belongs to the drug 'warfarin'");
	expect_refused("drugs.tsv", "newdrug\t\tverified\t\t\tatc\n", NULL,
		       "code_status verified without a code");
	expect_refused("drugs.tsv", "newdrug\t12a\tverified\t\t\tatc\n", NULL,
		       "the RxCUI '12a' is not 1 to 10 digits");
	expect_refused("drugs.tsv", "newdrug\t99999999\tchecked\t\t\tatc\n", NULL,
		       "the code_status 'checked' is not verified, unverified or unknown");
	expect_refused("products.tsv", "thing\t\tunknown\t\tfrobnicine\tatc\n", NULL,
		       "the ingredient 'frobnicine' is not a drug of drugs.tsv");
	expect_refused("classes.tsv", "new class\tno such class\t\tno\tatc\n", NULL,
		       "the parent 'no such class' is not a class of classes.tsv");
	expect_refused("classes.tsv", "NSAIDs\t\t\tno\tatc\n", NULL,
		       "the name 'NSAIDs' already names the class 'NSAIDs'");
	expect_refused("classes.tsv", "new class\t\t\tmaybe\tatc\n", NULL,
		       "therapy is 'maybe', not yes or no");
	expect_refused("allergy.tsv", "penicillins\tcephalosporins\tlow\tagain\tpichichero\n",
		       NULL, "the rule penicillins -> cephalosporins is there already");
	expect_refused("labs.tsv", "new test\t4548-5\tverified\t\t\t\tvsac\n", NULL,
		       "'4548-5' is not a LOINC code (digits, '-', a Mod 10 check digit)");
	expect_refused("labs.tsv", "new test\t4548-4\tverified\t\t\t\tvsac\n", NULL,
		       "the LOINC code 4548-4 already belongs to the test 'HbA1c'");
	expect_refused("labs.tsv", "new test\t\tunknown\tno panel\t\t\tvsac\n", NULL,
		       "the panel 'no panel' is not another test of labs.tsv");
	expect_refused("lab-retest.tsv", "HbA1c\tweekly\tsoon\tnote\tg147\n", NULL,
		       "min_days 'soon' is not a whole number of days");
	expect_refused("lab-retest.tsv", "no test\tany\t1\tnote\tg147\n", NULL,
		       "the test 'no test' is not in labs.tsv");
	expect_refused("lab-retest.tsv", "HbA1c\tchildren with type 1 diabetes\t30\tn\tg147\n",
		       NULL, "the test 'HbA1c' has the situation 'children with type 1 "
			     "diabetes' already");
	expect_refused("sources.tsv", "onc-hp\tagain\n", NULL,
		       "the source key 'onc-hp' is there twice");
	expect_refused("comorbidity-groups.tsv", "mi\tagain\t1\tmi\t1\t\tlace2010\n", NULL,
		       "the group 'mi' is there twice");
	expect_refused("comorbidity-groups.tsv", "x\tx\t100\tx\t1\t\tlace2010\n", NULL,
		       "lace '100' is not a whole number from 0 to 20");
	expect_refused("comorbidity-groups.tsv", "x\tx\t1\tx\t1\tnothing\tlace2010\n", NULL,
		       "supersedes 'nothing' is not another group of this file");
	expect_refused("comorbidity.tsv", "icd-9\t410\tmi\t\tquan2005\n", NULL,
		       "the system 'icd-9' is not icd-10 or snomed");
	expect_refused("comorbidity.tsv", "icd-10\tI2\tmi\t\tquan2005\n", NULL,
		       "'I2' is not an ICD-10 code");
	expect_refused("comorbidity.tsv", "snomed\t12ab56\tmi\t\tcw-map\n", NULL,
		       "'12ab56' is not a SNOMED CT identifier");
	expect_refused("comorbidity.tsv", "icd-10\tI21.0\tnone\t\tquan2005\n", NULL,
		       "the group 'none' is not in comorbidity-groups.tsv");
	expect_refused("comorbidity.tsv", "icd-10\t121.0\tchf\t\tquan2005\n", NULL,
		       "'121.0' is not an ICD-10 code");
	expect_refused("comorbidity.tsv", "icd-10\ti25.2\tchf\t\tquan2005\n", NULL,
		       "the code icd-10 i25.2 is there already (group mi)");
	expect_refused("comorbidity.tsv", "snomed\t22298006\tmi\t\tmy-memory\n", NULL,
		       "the source 'my-memory' is not in sources.tsv");
}

/* The comorbidity groups: ICD-10 by the longest prefix, SNOMED CT exactly,
 * the weights of risk-scores.md, the supersede steps. */
static const char *
group_of(const char *system, const char *code)
{
	const struct kb_comorbid *c = kb_comorbidity(kb, system, code);

	return c ? kb_cgroup_at(kb, c->group)->group : NULL;
}

static void
test_comorbidity(void **state)
{
	static const struct {
		const char *group;
		unsigned lace, charlson;
		const char *supersedes;
	} w[] = {
		{"mi", 1, 1, NULL}, {"chf", 2, 1, NULL}, {"pvd", 1, 1, NULL},
		{"cvd", 1, 1, NULL}, {"dementia", 3, 1, NULL}, {"copd", 2, 1, NULL},
		{"ctd", 3, 1, NULL}, {"ulcer", 0, 1, NULL}, {"diabetes", 1, 1, NULL},
		{"diabetes-complicated", 2, 2, "diabetes"}, {"hemiplegia", 0, 2, NULL},
		{"liver-mild", 2, 1, NULL}, {"liver-severe", 4, 3, "liver-mild"},
		{"renal-mild", 2, 0, NULL}, {"renal-severe", 4, 2, "renal-mild"},
		{"tumour", 2, 2, NULL}, {"metastatic", 6, 6, "tumour"}, {"aids", 0, 6, NULL},
	};
	struct kb_counts n;

	kb_count(kb, &n);
	assert_int_equal(n.comorbidity_groups, sizeof(w) / sizeof(w[0]));
	assert_true(n.comorbidity_codes > 300);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		int id = kb_find_cgroup(kb, w[i].group);
		const struct kb_cgroup *g;

		assert_true(id >= 0);
		g = kb_cgroup_at(kb, (unsigned)id);
		assert_int_equal(g->lace, w[i].lace);
		assert_int_equal(g->charlson, w[i].charlson);
		if (w[i].supersedes)
			assert_string_equal(kb_cgroup_at(kb, (unsigned)g->supersedes)->group,
					    w[i].supersedes);
		else
			assert_int_equal(g->supersedes, -1);
	}
	assert_string_equal(kb_cgroup_at(kb, (unsigned)kb_find_cgroup(kb, "liver-mild"))->lace_item,
			    kb_cgroup_at(kb, (unsigned)kb_find_cgroup(kb, "renal-mild"))->lace_item);
	assert_int_equal(kb_find_cgroup(kb, "nope"), -1);
	assert_null(kb_cgroup_at(kb, 1000));

	/* ICD-10-CM by prefix, dots and case ignored */
	assert_string_equal(group_of(KB_ICD10CM, "I21.4"), "mi");
	assert_string_equal(group_of(KB_ICD10CM, "I252"), "mi");
	assert_string_equal(group_of(KB_ICD10, "i25.2"), "mi");
	assert_null(group_of(KB_ICD10CM, "I25.10")); /* chronic ischaemic disease: not MI */
	assert_string_equal(group_of(KB_ICD10CM, "E11.9"), "diabetes");
	assert_string_equal(group_of(KB_ICD10CM, "E11.65"), "diabetes");
	assert_string_equal(group_of(KB_ICD10CM, "E11.22"), "diabetes-complicated");
	assert_string_equal(group_of(KB_ICD10CM, "E10.319"), "diabetes-complicated");
	/* the longest prefix wins */
	assert_string_equal(group_of(KB_ICD10CM, "N18.1"), "renal-mild");
	assert_string_equal(group_of(KB_ICD10CM, "N18.2"), "renal-mild");
	assert_string_equal(group_of(KB_ICD10CM, "N18.30"), "renal-severe");
	assert_string_equal(group_of(KB_ICD10CM, "N18.6"), "renal-severe");
	assert_string_equal(group_of(KB_ICD10CM, "K70.30"), "liver-mild");
	assert_string_equal(group_of(KB_ICD10CM, "K70.40"), "liver-severe");
	assert_null(group_of(KB_ICD10CM, "K70.5"));
	assert_string_equal(group_of(KB_ICD10CM, "C34.90"), "tumour");
	assert_string_equal(group_of(KB_ICD10CM, "C78.00"), "metastatic");
	assert_string_equal(group_of(KB_ICD10CM, "I42.9"), "chf");
	assert_null(group_of(KB_ICD10CM, "I42.1"));
	assert_string_equal(group_of(KB_ICD10CM, "B20"), "aids");
	assert_null(group_of(KB_ICD10CM, "B23"));
	assert_null(group_of(KB_ICD10CM, "I1"));
	assert_null(group_of(KB_ICD10CM, ""));
	assert_null(group_of(KB_ICD10CM, "I21-4"));
	assert_null(group_of(KB_ICD10CM, "I2100000000000000000000000"));
	/* SNOMED CT exactly, as Synthea writes it */
	assert_string_equal(group_of(KB_SNOMED, "44054006"), "diabetes");
	assert_string_equal(group_of(KB_SNOMED, "127013003"), "diabetes-complicated");
	assert_string_equal(group_of(KB_SNOMED, "433144002"), "renal-severe");
	assert_string_equal(group_of(KB_SNOMED, "431855005"), "renal-mild");
	assert_string_equal(group_of(KB_SNOMED, "254637007"), "tumour");
	assert_null(group_of(KB_SNOMED, "4405400"));   /* no prefixes for SNOMED */
	assert_null(group_of(KB_SNOMED, "162573006")); /* suspected lung cancer */
	assert_null(group_of("http://example.org", "44054006"));
	assert_null(group_of(NULL, "44054006"));
	assert_null(group_of(KB_SNOMED, NULL));
	/* every row names a source the kb knows */
	for (unsigned g = 0; g < n.comorbidity_groups; g++)
		assert_non_null(kb_cgroup_at(kb, g)->source);
}

static void
test_malformed_files(void **state)
{
	struct reports r = {0};
	enum cw_err err;
	char dir[64] = "/tmp/cw-kb-XXXXXX", p[256], q[256];
	struct kb *k;

	/* a header that is not the format's */
	{
		char hdir[64] = "/tmp/cw-kb-XXXXXX";
		bool found;

		assert_non_null(mkdtemp(hdir));
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(p, sizeof(p), KB_DIR "/%s", files[i]);
			snprintf(q, sizeof(q), "%s/%s", hdir, files[i]);
			copy_file(p, q, strcmp(files[i], "allergy.tsv") == 0
						? "allergen\treacts\tseverity\tsource\n" : NULL);
		}
		k = kb_load(hdir, collect, &r, &err);
		unit_rm_dir(hdir);
		assert_null(k);
		assert_int_equal(err, CW_EINVALID);
		found = strstr(r.buf, "allergy.tsv:") &&
			strstr(r.buf, "the header line must name the columns allergen, "
				      "reacts, severity, note, source");
		if (!found)
			fail_msg("got %s", r.buf);
	}
	/* a missing file: I/O, named */
	memset(&r, 0, sizeof(r));
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (strcmp(files[i], "labs.tsv") == 0)
			continue;
		snprintf(p, sizeof(p), KB_DIR "/%s", files[i]);
		snprintf(q, sizeof(q), "%s/%s", dir, files[i]);
		copy_file(p, q, NULL);
	}
	k = kb_load(dir, collect, &r, &err);
	unit_rm_dir(dir);
	assert_null(k);
	assert_int_equal(err, CW_EIO);
	assert_non_null(strstr(r.buf, "labs.tsv: cannot read: No such file"));
	/* no folder at all */
	memset(&r, 0, sizeof(r));
	assert_null(kb_load("/nonexistent/kb", collect, &r, &err));
	assert_int_equal(err, CW_EIO);
	assert_true(r.count >= 1);
}

/* ---- the reference lists of ../shared/kb are all there ------------------ */

/* ONC high-priority pairs as the reference lists them (object members,
 * precipitant members; ddi-onc-high-priority.tsv). */
static const struct {
	const char *id, *a, *b;
} onc[] = {
	{"onc1", "dexmethylphenidate,dextroamphetamine,methylphenidate,lisdexamfetamine,"
		 "methamphetamine,phendimetrazine,pseudoephedrine,amphetamine,benzphetamine,"
		 "diethylpropion,phentermine,atomoxetine",
	 "tranylcypromine,phenelzine,isocarboxazid,procarbazine,selegiline"},
	{"onc2", "atazanavir", "omeprazole,lansoprazole,pantoprazole,rabeprazole,esomeprazole"},
	{"onc3", "febuxostat", "azathioprine,mercaptopurine"},
	{"onc4", "fluoxetine,paroxetine,citalopram,escitalopram,sertraline,fluvoxamine,"
		 "duloxetine,nefazodone,desvenlafaxine,milnacipran,venlafaxine",
	 "tranylcypromine,phenelzine,isocarboxazid,procarbazine,selegiline"},
	{"onc5", "irinotecan",
	 "ritonavir,nelfinavir,atazanavir,indinavir,saquinavir,amprenavir,darunavir,"
	 "lopinavir,tipranavir,fosamprenavir,clarithromycin,erythromycin,telithromycin,"
	 "amiodarone,verapamil,diltiazem,ketoconazole,itraconazole,fluconazole,"
	 "voriconazole,nefazodone,aprepitant,cimetidine"},
	{"onc6", "meperidine,methadone,tapentadol,fentanyl,tramadol,dextromethorphan",
	 "tranylcypromine,phenelzine,isocarboxazid,procarbazine,selegiline"},
	{"onc7", "amitriptyline,clomipramine,desipramine,doxepin,imipramine,nortriptyline,"
		 "protriptyline,trimipramine",
	 "tranylcypromine,phenelzine,isocarboxazid,procarbazine,selegiline"},
	{"onc8", "amiodarone,azithromycin,citalopram,clarithromycin,erythromycin,"
		 "escitalopram,haloperidol,methadone,moxifloxacin,ondansetron,sotalol",
	 "amiodarone,azithromycin,citalopram,clarithromycin,erythromycin,escitalopram,"
	 "haloperidol,methadone,moxifloxacin,ondansetron,sotalol"},
	{"onc9", "ramelteon", "fluvoxamine,amiodarone,ticlopidine,ciprofloxacin"},
	{"onc10", "ritonavir,amprenavir,darunavir,fosamprenavir,indinavir,lopinavir,"
		  "nelfinavir,saquinavir,tipranavir,atazanavir",
	 "bosentan,rifapentine,carbamazepine,rifabutin,rifampin,St John's wort"},
	{"onc11", "simvastatin,lovastatin",
	 "saquinavir,tipranavir,ritonavir,nelfinavir,atazanavir,amprenavir,darunavir,"
	 "lopinavir,indinavir,clarithromycin,erythromycin,telithromycin,amiodarone,"
	 "verapamil,diltiazem,ketoconazole,itraconazole,fluconazole,voriconazole,nefazodone"},
	{"onc12", "ergotamine,methylergonovine,dihydroergotamine,ergonovine",
	 "saquinavir,tipranavir,ritonavir,nelfinavir,atazanavir,amprenavir,darunavir,"
	 "lopinavir,indinavir,clarithromycin,erythromycin,telithromycin,ketoconazole,"
	 "itraconazole,voriconazole"},
	{"onc13", "tizanidine",
	 "ciprofloxacin,fluvoxamine,mexiletine,propafenone,zileuton,amiodarone,ticlopidine"},
	{"onc14", "tranylcypromine", "procarbazine"},
	{"onc15", "sumatriptan,zolmitriptan,rizatriptan",
	 "tranylcypromine,phenelzine,isocarboxazid,moclobamide,methylene blue"},
	/* ddi-other.tsv */
	{"warfarin-nsaids", "warfarin",
	 "ibuprofen,naproxen,diclofenac,ketorolac,meloxicam,indomethacin,celecoxib"},
	{"digoxin-cyclosporine", "digoxin", "cyclosporine"},
	{"sildenafil-nitrates", "sildenafil",
	 "nitroglycerin,isosorbide mononitrate,isosorbide dinitrate"},
	{"linezolid-ssri", "linezolid", "sertraline,fluoxetine,paroxetine,citalopram,escitalopram"},
	{"linezolid-snri", "linezolid", "venlafaxine,duloxetine"},
};

static size_t
list(const char *csv, char out[][64], size_t max)
{
	size_t n = 0;

	while (*csv && n < max) {
		size_t k = strcspn(csv, ",");

		snprintf(out[n++], 64, "%.*s", (int)k, csv);
		csv += k + (csv[k] == ',');
	}
	return n;
}

static void
test_onc_pairs_member_by_member(void **state)
{
	char a[32][64], b[32][64];

	for (size_t i = 0; i < sizeof(onc) / sizeof(onc[0]); i++) {
		size_t na = list(onc[i].a, a, 32), nb = list(onc[i].b, b, 32);
		const struct kb_interaction *x = NULL;

		for (size_t k = 0; k < 64 && !x; k++) {
			const struct kb_interaction *r = kb_interaction_at(kb, (unsigned)k);

			if (r && strcmp(r->id, onc[i].id) == 0)
				x = r;
		}
		assert_non_null(x);
		if (strncmp(onc[i].id, "onc", 3) == 0) {
			assert_int_equal(x->severity, KB_SEV_HIGH);
			assert_true(x->interruptive);
		}
		for (size_t p = 0; p < na; p++) {
			for (size_t q = 0; q < nb; q++) {
				unsigned dx = (unsigned)drug(a[p]), dy = (unsigned)drug(b[q]);

				if (dx == dy)
					continue;
				if (!fires(dx, dy, onc[i].id) || !fires(dy, dx, onc[i].id))
					fail_msg("%s: %s + %s does not fire", onc[i].id, a[p], b[q]);
			}
		}
	}
}

/* The nearby negatives the reference itself names, and others next door. */
static void
test_onc_negatives(void **state)
{
	static const struct {
		const char *id, *a, *b;
	} no[] = {
		{"onc8", "levofloxacin", "ciprofloxacin"}, /* "NOT levofloxacin, ..." */
		{"onc8", "fluconazole", "haloperidol"},
		{"onc8", "citalopram", "citalopram"},      /* one drug is no pair */
		{"onc11", "atorvastatin", "clarithromycin"}, /* "not atorvastatin" */
		{"onc11", "pravastatin", "itraconazole"},
		{"onc12", "ergotamine", "amiodarone"},   /* on the statin list only */
		{"onc5", "irinotecan", "rifampin"},
		{"onc15", "sumatriptan", "selegiline"},   /* not on the triptan list */
		{"onc1", "phentermine", "moclobamide"},   /* triptan list only */
		{"onc9", "ramelteon", "mexiletine"},      /* tizanidine list only */
		{"onc2", "atazanavir", "cimetidine"},
		{"onc3", "allopurinol", "azathioprine"},  /* the other xanthine oxidase inhibitor */
		{"onc4", "bupropion", NULL},
		{"warfarin-nsaids", "apixaban", "ibuprofen"}, /* another anticoagulant */
		{"warfarin-nsaids", "warfarin", "acetaminophen"},
		{"sildenafil-nitrates", "sildenafil", "amlodipine"},
		{"linezolid-ssri", "linezolid", "amitriptyline"},
		{"digoxin-cyclosporine", "digoxin", "tacrolimus"}, /* the other calcineurin inhibitor */
		{"onc14", "phenelzine", "procarbazine"},
	};

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		int x = kb_find_drug(kb, no[i].a), y = no[i].b ? drug(no[i].b) : -1;

		if (x < 0 || y < 0)
			continue; /* bupropion: not in the kb, nothing to fire */
		if (fires((unsigned)x, (unsigned)y, no[i].id))
			fail_msg("%s fires for %s + %s", no[i].id, no[i].a, no[i].b);
	}
}

static void
test_non_interruptive_pairs(void **state)
{
	/* ddi-non-interruptive.tsv, one member each side */
	static const char *const ni[][3] = {
		{"ni1", "lisinopril", "aspirin"},        {"ni2", "enalapril", "losartan"},
		{"ni3", "ramipril", "ibuprofen"},        {"ni4", "niacin", "atorvastatin"},
		{"ni5", "metoprolol", "sertraline"},     {"ni6", "carvedilol", "levothyroxine"},
		{"ni7", "metoprolol", "calcium carbonate"},
		{"ni8", "metoprolol", "amlodipine"},     {"ni9", "naproxen", "carvedilol"},
		{"ni10", "hydrochlorothiazide", "lisinopril"},
		{"ni11", "hydrochlorothiazide", "celecoxib"},
		{"ni12", "levothyroxine", "calcium citrate"},
		{"ni13", "levothyroxine", "simvastatin"}, {"ni14", "tacrolimus", "prednisone"},
		{"ni15", "aluminum hydroxide", "prednisone"},
		{"ni16", "alendronate", "calcium carbonate"},
		{"ni17", "folic acid", "methotrexate"},  {"ni18", "glipizide", "lisinopril"},
		{"ni19", "warfarin", "prednisone"},      {"ni20", "warfarin", "acetaminophen"},
		{"ni21", "warfarin", "omeprazole"},      {"ni22", "warfarin", "rosuvastatin"},
		{"ni23", "warfarin", "vitamin E"},       {"ni24", "pantoprazole", "ketoconazole"},
		{"ni25", "omeprazole", "diazepam"},      {"ni26", "clopidogrel", "aspirin"},
		{"ni27", "norethindrone", "prednisone"}, {"ni28", "budesonide", "donepezil"},
	};
	/* and next door: not the pair */
	static const char *const no[][3] = {
		{"ni1", "losartan", "aspirin"},      /* an ARB, not an ACE inhibitor */
		{"ni5", "metoprolol", "venlafaxine"}, /* an SNRI, not an SSRI */
		{"ni24", "pantoprazole", "fluconazole"}, /* a triazole */
		{"ni25", "lansoprazole", "diazepam"},  /* only omeprazole is named */
		{"ni26", "clopidogrel", "ibuprofen"},
		{"ni12", "levothyroxine", "ferrous sulfate"},
	};

	for (size_t i = 0; i < sizeof(ni) / sizeof(ni[0]); i++) {
		unsigned x = (unsigned)drug(ni[i][1]), y = (unsigned)drug(ni[i][2]);
		struct kb_mapping a = one(x), b = one(y);
		struct kb_ddi_hit h[8];
		size_t n = kb_interactions(kb, &a, &b, h, 8);
		bool seen = false;

		for (size_t k = 0; k < n && k < 8; k++) {
			if (strcmp(h[k].rule->id, ni[i][0]) == 0) {
				seen = true;
				assert_false(h[k].rule->interruptive);
				assert_int_equal(h[k].rule->severity, KB_SEV_LOW);
			}
		}
		if (!seen)
			fail_msg("%s: %s + %s does not fire", ni[i][0], ni[i][1], ni[i][2]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (fires((unsigned)drug(no[i][1]), (unsigned)drug(no[i][2]), no[i][0]))
			fail_msg("%s fires for %s + %s", no[i][0], no[i][1], no[i][2]);
	}
}

/* The drugs a rule side covers. */
static size_t
side_drugs(const char *side, unsigned *out, size_t max)
{
	int d = kb_find_drug(kb, side);

	if (d >= 0) {
		out[0] = (unsigned)d;
		return 1;
	}
	return kb_class_members(kb, (unsigned)cls(side), out, max);
}

static bool
side_has(const char *side, unsigned d)
{
	int sd = kb_find_drug(kb, side);

	if (sd >= 0)
		return (unsigned)sd == d;
	return kb_drug_in_class(kb, d, (unsigned)cls(side));
}

/* Every interaction of the files: each member pair of its two sides fires
 * it, and a drug sharing a class with a member of a side, but outside the
 * side, does not. */
static void
test_every_interaction(void **state)
{
	struct kb_counts n;
	size_t negatives = 0;

	kb_count(kb, &n);
	for (unsigned i = 0; i < n.interactions; i++) {
		const struct kb_interaction *x = kb_interaction_at(kb, i);
		unsigned a[256], b[256], cl[64];
		size_t na = side_drugs(x->a, a, 256), nb = side_drugs(x->b, b, 256);
		bool negative = false;

		assert_true(na > 0 && na <= 256);
		assert_true(nb > 0 && nb <= 256);
		for (size_t p = 0; p < na; p++) {
			for (size_t q = 0; q < nb; q++) {
				if (a[p] != b[q] && !fires(a[p], b[q], x->id))
					fail_msg("%s: %s + %s does not fire", x->id,
						 kb_drug_at(kb, a[p])->name, kb_drug_at(kb, b[q])->name);
			}
		}
		/* nearby: a drug in a class of a's first member, outside side a */
		for (int side = 0; side < 2 && !negative; side++) {
			const char *mine = side ? x->b : x->a, *other = side ? x->a : x->b;
			unsigned first = side ? b[0] : a[0], partner = side ? a[0] : b[0];
			size_t nc = kb_drug_classes(kb, first, cl, 64);

			for (size_t c = 0; c < nc && c < 64 && !negative; c++) {
				unsigned m[256];
				size_t nm = kb_class_members(kb, cl[c], m, 256);

				for (size_t k = 0; k < nm && k < 256; k++) {
					if (side_has(mine, m[k]) || side_has(other, m[k]) ||
					    m[k] == partner)
						continue;
					if (fires(m[k], partner, x->id))
						fail_msg("%s fires for %s + %s", x->id,
							 kb_drug_at(kb, m[k])->name,
							 kb_drug_at(kb, partner)->name);
					negative = true;
					break;
				}
			}
		}
		negatives += negative;
	}
	/* most rules have a neighbour outside them (the rest are classes
	 * whose every relative is inside) */
	assert_true(negatives * 2 > n.interactions);
}

/* Every class: a member is in it and in each class above it; a drug that
 * is not a member is not. */
static void
test_every_class(void **state)
{
	struct kb_counts n;

	kb_count(kb, &n);
	for (unsigned c = 0; c < n.classes; c++) {
		unsigned m[256];
		size_t nm = kb_class_members(kb, c, m, 256);
		const struct kb_class *k = kb_class_at(kb, c);
		bool outside = false;

		if (!nm)
			fail_msg("the class '%s' has no drug", k->name);
		for (size_t i = 0; i < nm && i < 256; i++) {
			int p = *k->parent ? cls(k->parent) : -1;

			assert_true(kb_drug_in_class(kb, m[i], c));
			for (; p >= 0; p = *kb_class_at(kb, (unsigned)p)->parent
						   ? cls(kb_class_at(kb, (unsigned)p)->parent) : -1)
				assert_true(kb_drug_in_class(kb, m[i], (unsigned)p));
		}
		for (unsigned d = 0; d < n.drugs && !outside; d++) {
			if (!kb_drug_in_class(kb, d, c))
				outside = true;
		}
		assert_true(outside);
	}
	/* the ones the task names */
	assert_true(kb_drug_in_class(kb, (unsigned)drug("celecoxib"), (unsigned)cls("COX-2 selective NSAIDs")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("celecoxib"), (unsigned)cls("NSAIDs")));
	assert_false(kb_drug_in_class(kb, (unsigned)drug("celecoxib"), (unsigned)cls("nonselective NSAIDs")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("losartan"), (unsigned)cls("renin-angiotensin system inhibitors")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("lisinopril"), (unsigned)cls("renin-angiotensin system inhibitors")));
	assert_false(kb_drug_in_class(kb, (unsigned)drug("losartan"), (unsigned)cls("ACE inhibitors")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("codeine"), (unsigned)cls("phenanthrene opioids")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("fentanyl"), (unsigned)cls("opioids")));
	assert_false(kb_drug_in_class(kb, (unsigned)drug("fentanyl"), (unsigned)cls("phenanthrene opioids")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("tramadol"), (unsigned)cls("opioids")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("cephalexin"), (unsigned)cls("cephalosporins, R1 like penicillins")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("ceftriaxone"), (unsigned)cls("cephalosporins, R1 unlike penicillins")));
	assert_true(kb_drug_in_class(kb, (unsigned)drug("amoxicillin"), (unsigned)cls("beta-lactams")));
	assert_true(kb_class_within(kb, (unsigned)cls("ACE inhibitors"), (unsigned)cls("renin-angiotensin system inhibitors")));
	assert_false(kb_class_within(kb, (unsigned)cls("renin-angiotensin system inhibitors"), (unsigned)cls("ACE inhibitors")));
	assert_int_equal(cls("PCN"), cls("penicillins"));
	/* therapeutic duplication: the two examples, and not the ONC
	 * lists or a class whose members are given together on purpose */
	assert_true(kb_class_is_therapy(kb, (unsigned)cls("NSAIDs")));
	assert_true(kb_class_is_therapy(kb, (unsigned)cls("renin-angiotensin system inhibitors")));
	assert_false(kb_class_is_therapy(kb, (unsigned)cls("nonselective NSAIDs")));
	assert_false(kb_class_is_therapy(kb, (unsigned)cls("insulins")));
	assert_false(kb_class_is_therapy(kb, (unsigned)cls("MAO inhibitors (ONC)")));
	assert_false(kb_class_is_therapy(kb, 100000));
}

/* ---- mapping ---------------------------------------------------------- */

static void
expect_map(const char *text, const struct kb_coding *c, size_t nc, bool allergy,
	   enum kb_status st, const char *want)
{
	struct kb_mapping m;
	char got[512] = "";
	size_t n = 0;

	if (allergy)
		kb_map_allergy(kb, c, nc, text, &m);
	else
		kb_map_medication(kb, c, nc, text, &m);
	for (unsigned i = 0; i < m.n; i++) {
		const char *name = m.ref[i].kind == KB_REF_DRUG ? kb_drug_at(kb, m.ref[i].id)->name
								: kb_class_at(kb, m.ref[i].id)->name;

		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? "," : "", name);
	}
	if (m.status != st || strcmp(got, want) != 0)
		fail_msg("'%s': status %d '%s', wanted %d '%s' (unknown '%s')",
			 text ? text : c[0].display, (int)m.status, got, (int)st, want, m.unknown);
}

static void
test_map_text(void **state)
{
	static const struct {
		const char *text;
		enum kb_status st;
		const char *want;
	} cases[] = {
		{"Coumadin 5 mg tablet", KB_MAPPED, "warfarin"},
		{"COUMADIN 5MG TAB", KB_MAPPED, "warfarin"},
		{"ibuprofen 400mg OTC", KB_MAPPED, "ibuprofen"},
		{"Advil 200 mg", KB_MAPPED, "ibuprofen"},
		{"Metformin HCl 500 mg ER", KB_MAPPED, "metformin"},
		{"metformin hydrochloride 500 MG Extended Release Oral Tablet", KB_MAPPED, "metformin"},
		{"Toprol XL 50 mg", KB_MAPPED, "metoprolol"},
		{"Naproxen sodium 220 mg tablet (over the counter, Aleve)", KB_MAPPED, "naproxen"},
		{"Bactrim DS", KB_MAPPED, "sulfamethoxazole,trimethoprim"},
		{"Bactrim DX", KB_PARTIAL, "sulfamethoxazole,trimethoprim"},
		{"Bactrim 800/160 mg tablet", KB_MAPPED, "sulfamethoxazole,trimethoprim"},
		{"sulfamethoxazole / trimethoprim", KB_MAPPED, "sulfamethoxazole,trimethoprim"},
		{"St. John's Wort 300 mg capsule", KB_MAPPED, "St John's wort"},
		{"Penicillin V Potassium 250 MG Oral Tablet", KB_MAPPED, "penicillin V"},
		{"Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray", KB_MAPPED, "nitroglycerin"},
		{"Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine "
		 "succinate 0.417 MG/ML Oral Solution", KB_MAPPED,
		 "acetaminophen,dextromethorphan,doxylamine"},
		{"Insulin glargine 100 units/mL prefilled pen", KB_MAPPED, "insulin glargine"},
		{"Lisinopril 10 mg and frobozzamine 5 mg", KB_PARTIAL, "lisinopril"},
		{"Wound care dressing", KB_UNCHECKED, ""},
		{"insulin", KB_UNCHECKED, ""},      /* a class, not a medication */
		{"statins", KB_UNCHECKED, ""},
		{"Seasonique 91 Day Pack", KB_UNCHECKED, ""},
		{"", KB_UNCHECKED, ""},
		{"500 mg tablet", KB_UNCHECKED, ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_map(cases[i].text, NULL, 0, false, cases[i].st, cases[i].want);
}

static void
test_map_codes(void **state)
{
	struct kb_coding c[2] = {{KB_RXNORM, "11289", NULL}};
	struct kb_mapping m;

	expect_map(NULL, c, 1, false, KB_MAPPED, "warfarin");
	kb_map_medication(kb, c, 1, NULL, &m);
	assert_int_equal(m.ref[0].via, KB_VIA_CODE);
	/* a combination's code */
	c[0] = (struct kb_coding){KB_RXNORM, "10831", NULL};
	expect_map(NULL, c, 1, false, KB_MAPPED, "sulfamethoxazole,trimethoprim");
	/* a clinical drug code carried by the Synthea samples */
	c[0] = (struct kb_coding){KB_RXNORM, "314076", NULL};
	expect_map(NULL, c, 1, false, KB_MAPPED, "lisinopril");
	c[0] = (struct kb_coding){KB_RXNORM, "1043400", NULL};
	expect_map(NULL, c, 1, false, KB_MAPPED, "acetaminophen,dextromethorphan,doxylamine");
	/* an unknown clinical drug code: its display */
	c[0] = (struct kb_coding){KB_RXNORM, "999999999", "Lisinopril 40 MG Oral Tablet"};
	expect_map(NULL, c, 1, false, KB_MAPPED, "lisinopril");
	/* an unknown code and nothing else: unchecked, never safe */
	c[0] = (struct kb_coding){KB_RXNORM, "999999999", NULL};
	expect_map(NULL, c, 1, false, KB_UNCHECKED, "");
	/* an RxCUI in another system is not an RxCUI */
	c[0] = (struct kb_coding){"http://hl7.org/fhir/sid/ndc", "11289", NULL};
	expect_map(NULL, c, 1, false, KB_UNCHECKED, "");
	/* a code plus text naming something else: both (never fewer alerts) */
	c[0] = (struct kb_coding){KB_RXNORM, "6809", "metformin"};
	expect_map("Coumadin 5 mg", c, 1, false, KB_MAPPED, "metformin,warfarin");
	/* two codings */
	c[0] = (struct kb_coding){KB_RXNORM, "6809", NULL};
	c[1] = (struct kb_coding){KB_RXNORM, "29046", NULL};
	expect_map(NULL, c, 2, false, KB_MAPPED, "metformin,lisinopril");
	/* an unverified code still maps (the flag is in the drug's row) */
	c[0] = (struct kb_coding){KB_RXNORM, "703", NULL};
	expect_map(NULL, c, 1, false, KB_MAPPED, "amiodarone");
}

/* Every medication of the demo data maps, by its code and by its text. */
static void
test_map_demo(void **state)
{
	static const char *const demo[] = {"data/demo/10-moss.json",
					   "data/demo/20-foot-ulcer.json"};
	size_t seen = 0;

	for (size_t f = 0; f < 2; f++) {
		json_error_t je;
		json_t *b = json_load_file(demo[f], 0, &je), *e;
		size_t i;

		assert_non_null(b);
		json_array_foreach(json_object_get(b, "entry"), i, e) {
			json_t *r = json_object_get(e, "resource"), *cc, *cd;
			const char *t = json_string_value(json_object_get(r, "resourceType"));
			struct kb_coding c[4];
			struct kb_mapping by_code, by_text;
			size_t nc = 0, k;

			if (strcmp(t, "MedicationRequest") && strcmp(t, "MedicationStatement"))
				continue;
			cc = json_object_get(r, "medicationCodeableConcept");
			json_array_foreach(json_object_get(cc, "coding"), k, cd) {
				if (nc < 4)
					c[nc++] = (struct kb_coding){
						json_string_value(json_object_get(cd, "system")),
						json_string_value(json_object_get(cd, "code")), NULL};
			}
			kb_map_medication(kb, c, nc, NULL, &by_code);
			kb_map_medication(kb, NULL, 0,
					  json_string_value(json_object_get(cc, "text")), &by_text);
			if (by_code.status != KB_MAPPED || by_text.status != KB_MAPPED ||
			    by_code.n != 1 || by_text.n != 1 ||
			    by_code.ref[0].id != by_text.ref[0].id)
				fail_msg("%s: '%s' maps %d/%d", demo[f],
					 json_string_value(json_object_get(cc, "text")),
					 (int)by_code.status, (int)by_text.status);
			seen++;
		}
		json_decref(b);
	}
	assert_int_equal(seen, 11);
}

/* Clinical drug displays as the Synthea samples carry them. */
static void
test_map_synthea_displays(void **state)
{
	static const char *const ok[][2] = {
		{"1 ML Epoetin Alfa 4000 UNT/ML Injection [Epogen]", "epoetin alfa"},
		{"24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "metformin"},
		{"24 HR metoprolol succinate 100 MG Extended Release Oral Tablet", "metoprolol"},
		{"Alendronic acid 10 MG Oral Tablet", "alendronate"},
		{"Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", "amoxicillin,clavulanate"},
		{"Ibuprofen 400 MG Oral Tablet [Ibu]", "ibuprofen"},
		{"Acetaminophen 325 MG Oral Tablet [Tylenol]", "acetaminophen"},
		{"NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", "epinephrine"},
		{"NITROFURANTOIN, MACROCRYSTALS 50 MG Oral Capsule", "nitrofurantoin"},
		{"Mirena 52 MG Intrauterine System", "levonorgestrel"},
		{"Vitamin B12 5 MG/ML Injectable Solution", "cyanocobalamin"},
		{"Meperidine Hydrochloride 50 MG Oral Tablet", "meperidine"},
		{"PACLitaxel 100 MG Injection", "paclitaxel"},
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct kb_coding c = {KB_RXNORM, "0", ok[i][0]};

		expect_map(NULL, &c, 1, false, KB_MAPPED, ok[i][1]);
	}
}

static void
test_map_allergy(void **state)
{
	struct kb_coding c = {KB_RXNORM, "10831", "sulfamethoxazole / trimethoprim"};

	expect_map("PCN", NULL, 0, true, KB_MAPPED, "penicillins");
	expect_map("penicillin allergy", NULL, 0, true, KB_MAPPED, "penicillins");
	expect_map("Allergy to penicillin", NULL, 0, true, KB_MAPPED, "penicillins");
	expect_map("Penicillin V", NULL, 0, true, KB_MAPPED, "penicillin V");
	expect_map("sulfa", NULL, 0, true, KB_MAPPED, "sulfonamide antibiotics");
	expect_map("Sulfa drugs - hives", NULL, 0, true, KB_MAPPED, "sulfonamide antibiotics");
	expect_map("NSAIDs", NULL, 0, true, KB_MAPPED, "NSAIDs");
	expect_map("Aspirin (substance)", NULL, 0, true, KB_MAPPED, "aspirin");
	expect_map("codeine intolerance", NULL, 0, true, KB_MAPPED, "codeine");
	expect_map(NULL, &c, 1, true, KB_MAPPED, "sulfamethoxazole,trimethoprim");
	/* as the demo data and the Synthea samples code them */
	c = (struct kb_coding){"http://snomed.info/sct", "764146007", "Penicillin"};
	expect_map("Penicillin", &c, 1, true, KB_MAPPED, "penicillins");
	c = (struct kb_coding){KB_RXNORM, "7984", "Penicillin V"};
	expect_map(NULL, &c, 1, true, KB_MAPPED, "penicillin V");
	c = (struct kb_coding){KB_RXNORM, "7984", NULL};
	expect_map(NULL, &c, 1, true, KB_MAPPED, "penicillin V");
	c = (struct kb_coding){KB_RXNORM, "25037", "cefdinir"};
	expect_map(NULL, &c, 1, true, KB_MAPPED, "cefdinir");
	c = (struct kb_coding){KB_RXNORM, "1191", "Aspirin"};
	expect_map(NULL, &c, 1, true, KB_MAPPED, "aspirin");
	c = (struct kb_coding){"http://snomed.info/sct", "84489001", "Mold (organism)"};
	expect_map(NULL, &c, 1, true, KB_UNCHECKED, "");
	expect_map("Shellfish (substance)", NULL, 0, true, KB_UNCHECKED, "");
	expect_map("Latex (substance)", NULL, 0, true, KB_UNCHECKED, "");
	expect_map("no known drug allergies", NULL, 0, true, KB_UNCHECKED, "");
	/* "no" is never noise: this is not an allergy to penicillin */
	expect_map("no penicillin allergy", NULL, 0, true, KB_PARTIAL, "penicillins");
}

/* ---- allergies -------------------------------------------------------- */

static enum kb_severity
allergy_sev(const char *allergy, const char *med, bool *direct)
{
	struct kb_mapping a, m;
	struct kb_allergy_hit h[8];
	size_t n;

	kb_map_allergy(kb, NULL, 0, allergy, &a);
	kb_map_medication(kb, NULL, 0, med, &m);
	if (a.status != KB_MAPPED || m.status != KB_MAPPED)
		fail_msg("'%s' or '%s' does not map", allergy, med);
	n = kb_allergy_check(kb, &a, &m, h, 8);
	if (!n)
		return 0;
	assert_int_equal(n, 1);
	*direct = h[0].rule == NULL;
	return h[0].severity;
}

static void
test_allergy_groups(void **state)
{
	static const struct {
		const char *allergy, *med;
		int sev; /* 0: nothing */
		bool direct;
	} cases[] = {
		{"PCN", "amoxicillin 500 mg", KB_SEV_HIGH, true},
		{"penicillin allergy", "Augmentin 875 mg", KB_SEV_HIGH, true},
		{"PCN", "Cephalexin 500 mg capsule", KB_SEV_MODERATE, false},
		{"PCN", "cefazolin 1 g", KB_SEV_MODERATE, false},
		{"amoxicillin", "cefadroxil", KB_SEV_MODERATE, false},
		{"PCN", "ceftriaxone 1 g injection", KB_SEV_LOW, false},
		{"PCN", "cefdinir 300 mg", KB_SEV_LOW, false},
		{"PCN", "metformin 500 mg", 0, false},
		{"cephalosporins", "cephalexin", KB_SEV_HIGH, true},
		{"cephalexin", "amoxicillin", 0, false}, /* the groups go one way */
		{"sulfa", "Bactrim DS tablet", KB_SEV_HIGH, true},
		{"sulfa", "furosemide 40 mg", KB_SEV_LOW, false},
		{"sulfa", "hydrochlorothiazide 25 mg", KB_SEV_LOW, false},
		{"sulfa", "glyburide 5 mg", KB_SEV_LOW, false},
		{"sulfa", "celecoxib", 0, false},
		{"aspirin", "ibuprofen 400mg OTC", KB_SEV_HIGH, false},
		{"aspirin", "Aleve", KB_SEV_HIGH, false},
		{"aspirin", "celecoxib 200 mg", KB_SEV_MODERATE, false},
		{"aspirin", "acetaminophen 500 mg", 0, false},
		{"ibuprofen", "naproxen", KB_SEV_HIGH, false},
		{"ibuprofen", "aspirin 81 mg", KB_SEV_HIGH, false},
		{"ibuprofen", "celecoxib", KB_SEV_MODERATE, false},
		{"celecoxib", "ibuprofen", 0, false},
		{"NSAIDs", "ketorolac", KB_SEV_HIGH, true},
		{"morphine", "codeine 30 mg", KB_SEV_MODERATE, false},
		{"morphine", "fentanyl patch", KB_SEV_LOW, false},
		{"fentanyl", "meperidine", KB_SEV_MODERATE, false},
		{"methadone", "propoxyphene", KB_SEV_MODERATE, false},
		{"methadone", "oxycodone", KB_SEV_LOW, false},
		{"tramadol", "morphine", KB_SEV_LOW, false},
		{"morphine", "MS Contin 15 mg", KB_SEV_HIGH, true},
		{"opioids", "tramadol", KB_SEV_HIGH, true},
		{"morphine", "dextromethorphan", 0, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool direct = false;
		int sev = (int)allergy_sev(cases[i].allergy, cases[i].med, &direct);

		if (sev != cases[i].sev || (sev && direct != cases[i].direct))
			fail_msg("allergy '%s', medication '%s': severity %d%s, wanted %d%s",
				 cases[i].allergy, cases[i].med, sev, direct ? " direct" : "",
				 cases[i].sev, cases[i].direct ? " direct" : "");
	}
}

/* Every allergy rule of the file: a member of the allergen side against a
 * member of the reacts side (not the same drug) gives a hit at least as
 * severe; a drug outside both gives none. */
static void
test_every_allergy_rule(void **state)
{
	struct kb_counts n;
	unsigned plain = (unsigned)drug("metformin");

	kb_count(kb, &n);
	for (unsigned i = 0; i < n.allergy_rules; i++) {
		const struct kb_allergy_rule *r = kb_allergy_rule_at(kb, i);
		unsigned a[256], b[256];
		size_t na = side_drugs(r->allergen, a, 256), nb = side_drugs(r->reacts, b, 256);
		struct kb_allergy_hit h[4];
		bool tested = false;

		for (size_t p = 0; p < na && !tested; p++) {
			for (size_t q = 0; q < nb && !tested; q++) {
				struct kb_mapping x = one(a[p]), y = one(b[q]);

				if (a[p] == b[q])
					continue;
				assert_int_equal(kb_allergy_check(kb, &x, &y, h, 4), 1);
				assert_true(h[0].severity >= r->severity);
				y = one(plain);
				assert_int_equal(kb_allergy_check(kb, &x, &y, h, 4), 0);
				tested = true;
			}
		}
		assert_true(tested);
	}
}

/* ---- interactions between mapped medications --------------------------- */

static void
test_interactions_mapped(void **state)
{
	struct kb_mapping a, b;
	struct kb_ddi_hit h[8];
	size_t n;

	kb_map_medication(kb, NULL, 0, "Coumadin 5 mg tablet", &a);
	kb_map_medication(kb, NULL, 0, "ibuprofen 400mg OTC", &b);
	n = kb_interactions(kb, &a, &b, h, 8);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].rule->id, "warfarin-nsaids");
	assert_int_equal(h[0].rule->severity, KB_SEV_HIGH);
	assert_true(h[0].rule->interruptive);
	assert_non_null(strstr(h[0].rule->advice, "PPI"));
	assert_int_equal(h[0].drug_a, drug("warfarin"));
	assert_int_equal(h[0].drug_b, drug("ibuprofen"));
	/* either way round */
	n = kb_interactions(kb, &b, &a, h, 8);
	assert_int_equal(n, 1);
	assert_int_equal(h[0].drug_a, drug("ibuprofen"));
	/* a product of several ingredients against one: each pair */
	kb_map_medication(kb, NULL, 0, "Acetaminophen / Dextromethorphan / doxylamine", &a);
	kb_map_medication(kb, NULL, 0, "Nardil 15 mg", &b);
	n = kb_interactions(kb, &a, &b, h, 8);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].rule->id, "onc6");
	/* the count goes on past max */
	kb_map_medication(kb, NULL, 0, "clarithromycin", &a);
	kb_map_medication(kb, NULL, 0, "simvastatin", &b);
	assert_true(kb_interactions(kb, &a, &b, NULL, 0) >= 1);
	/* the demo's patient: lisinopril with naproxen is information only */
	kb_map_medication(kb, NULL, 0, "Lisinopril 20 mg tablet", &a);
	kb_map_medication(kb, NULL, 0, "Naproxen sodium 220 mg tablet (over the counter, Aleve)", &b);
	n = kb_interactions(kb, &a, &b, h, 8);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].rule->id, "ni3");
	assert_false(h[0].rule->interruptive);
	/* unchecked meds have no drugs: nothing, and the caller says unchecked */
	kb_map_medication(kb, NULL, 0, "Seasonique 91 Day Pack", &a);
	assert_int_equal(a.status, KB_UNCHECKED);
	assert_int_equal(kb_interactions(kb, &a, &b, h, 8), 0);
}

/* ---- labs ------------------------------------------------------------- */

static int
lab(const char *q)
{
	int l = kb_find_lab(kb, q);

	if (l < 0)
		fail_msg("no lab test '%s'", q);
	return l;
}

static void
test_labs(void **state)
{
	/* lab-tests.tsv: every test by name, and by each LOINC code */
	static const char *const tests[] = {
		"HbA1c", "lipid panel", "LDL cholesterol", "liver function tests", "TSH",
		"free T4", "creatinine", "eGFR", "potassium", "sodium", "urea nitrogen",
		"glucose", "CRP", "procalcitonin", "vitamin D (25-OH D2+D3)", "ferritin",
		"digoxin level", "complete blood count", "hemoglobin", "INR",
		"urine albumin/creatinine ratio", "basic metabolic panel",
		"comprehensive metabolic panel", "PSA"};
	static const char *const codes[][2] = {
		{"4548-4", "HbA1c"}, {"17856-6", "HbA1c"}, {"57698-3", "lipid panel"},
		{"13457-7", "LDL cholesterol"}, {"18262-6", "LDL cholesterol"},
		{"2089-1", "LDL cholesterol"}, {"3016-3", "TSH"}, {"3024-7", "free T4"},
		{"2160-0", "creatinine"}, {"14682-9", "creatinine"}, {"62238-1", "eGFR"},
		{"98979-8", "eGFR"}, {"48642-3", "eGFR"}, {"48643-1", "eGFR"},
		{"2823-3", "potassium"}, {"2951-2", "sodium"}, {"3094-0", "urea nitrogen"},
		{"2345-7", "glucose"}, {"1988-5", "CRP"}, {"62292-8", "vitamin D (25-OH D2+D3)"},
		{"2276-4", "ferritin"}, {"58410-2", "complete blood count"},
		{"57021-8", "complete blood count"}, {"718-7", "hemoglobin"},
		{"6301-6", "INR"}, {"34714-6", "INR"}, {"9318-7", "urine albumin/creatinine ratio"},
		{"14959-1", "urine albumin/creatinine ratio"},
		{"32294-1", "urine albumin/creatinine ratio"}, {"24320-4", "basic metabolic panel"},
		{"51990-0", "basic metabolic panel"}, {"24323-8", "comprehensive metabolic panel"},
		{"2857-1", "PSA"}};
	const struct kb_retest *rt[8];
	unsigned m[32], from;
	size_t n;

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		lab(tests[i]);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_string_equal(kb_lab_at(kb, (unsigned)lab(codes[i][0]))->name, codes[i][1]);
	assert_int_equal(lab("hemoglobin a1c"), lab("HbA1c"));
	assert_int_equal(lab("BMP"), lab("basic metabolic panel"));
	assert_int_equal(kb_find_lab(kb, "4548-5"), -1);
	assert_int_equal(kb_find_lab(kb, "85354-9"), -1); /* blood pressure: not a lab */
	/* unverified LOINC codes keep the flag */
	assert_string_equal(kb_lab_at(kb, (unsigned)lab("TSH"))->loinc_status, "unverified");
	/* panels */
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("sodium"), (unsigned)lab("BMP")));
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("sodium"), (unsigned)lab("CMP")));
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("LFT"), (unsigned)lab("CMP")));
	assert_false(kb_lab_in_panel(kb, (unsigned)lab("LFT"), (unsigned)lab("BMP")));
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("BMP"), (unsigned)lab("CMP")));
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("718-7"), (unsigned)lab("CBC")));
	assert_true(kb_lab_in_panel(kb, (unsigned)lab("LDL"), (unsigned)lab("lipid panel")));
	assert_false(kb_lab_in_panel(kb, (unsigned)lab("eGFR"), (unsigned)lab("BMP")));
	assert_false(kb_lab_in_panel(kb, (unsigned)lab("BMP"), (unsigned)lab("BMP")));
	n = kb_lab_members(kb, (unsigned)lab("BMP"), m, 32);
	assert_int_equal(n, 5);
	n = kb_lab_members(kb, (unsigned)lab("CMP"), m, 32);
	assert_int_equal(n, 7); /* the basic panel, its five, liver tests */
	assert_int_equal(kb_lab_members(kb, (unsigned)lab("sodium"), m, 32), 0);
	/* retest intervals: own, and borrowed */
	n = kb_lab_retest(kb, (unsigned)lab("4548-4"), rt, 8, &from);
	assert_int_equal(n, 3);
	assert_int_equal(from, lab("HbA1c"));
	assert_int_equal(rt[0]->min_days, 90);
	assert_int_equal(rt[2]->min_days, 60);
	n = kb_lab_retest(kb, (unsigned)lab("LDL"), rt, 8, &from);
	assert_int_equal(n, 3);
	assert_int_equal(from, lab("lipid panel"));
	n = kb_lab_retest(kb, (unsigned)lab("free T4"), rt, 8, &from);
	assert_int_equal(n, 4);
	assert_int_equal(from, lab("TSH"));
	n = kb_lab_retest(kb, (unsigned)lab("CRP"), rt, 8, &from);
	assert_int_equal(n, 1);
	assert_int_equal(rt[0]->min_days, 1);
	assert_int_equal(kb_lab_retest(kb, (unsigned)lab("PSA"), rt, 8, &from), 0);
}

static void
test_loinc_and_normalize(void **state)
{
	char out[64];

	assert_true(kb_loinc_valid("4548-4", 6));
	assert_true(kb_loinc_valid("2160-0", 6));
	assert_true(kb_loinc_valid("718-7", 5));
	assert_true(kb_loinc_valid("98979-8", 7));
	assert_false(kb_loinc_valid("4548-5", 6));
	assert_false(kb_loinc_valid("4548", 4));
	assert_false(kb_loinc_valid("45a8-4", 6));
	assert_false(kb_loinc_valid("-4", 2));
	assert_int_equal(kb_normalize("Ibuprofen 400mg OTC", out, sizeof(out)), 20);
	assert_string_equal(out, "ibuprofen 400 mg otc");
	kb_normalize("  St. John's  Wort (300mg) ", out, sizeof(out));
	assert_string_equal(out, "st johns wort 300 mg");
	kb_normalize("tablet (over", out, sizeof(out));
	assert_string_equal(out, "tablet over");
	assert_int_equal(kb_normalize("abcdef", out, 4), 6);
	assert_string_equal(out, "abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loads),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_malformed_files),
		cmocka_unit_test(test_onc_pairs_member_by_member),
		cmocka_unit_test(test_onc_negatives),
		cmocka_unit_test(test_non_interruptive_pairs),
		cmocka_unit_test(test_every_interaction),
		cmocka_unit_test(test_every_class),
		cmocka_unit_test(test_map_text),
		cmocka_unit_test(test_map_codes),
		cmocka_unit_test(test_map_demo),
		cmocka_unit_test(test_map_synthea_displays),
		cmocka_unit_test(test_map_allergy),
		cmocka_unit_test(test_allergy_groups),
		cmocka_unit_test(test_every_allergy_rule),
		cmocka_unit_test(test_interactions_mapped),
		cmocka_unit_test(test_labs),
		cmocka_unit_test(test_loinc_and_normalize),
		cmocka_unit_test(test_comorbidity),
	};

	return cmocka_run_group_tests(tests, setup_kb, teardown_kb);
}
