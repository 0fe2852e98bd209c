/* Unit tests for fhir/model.c and the generated tables in model_gen.c. */
#include "unit.h"

#include "fhir/fhir.h"

static const struct fhir_elem *
elem(const char *type, const char *key, const struct fhir_elemtype **chosen)
{
	const struct fhir_type *t = fhir_type_find(type);

	assert_non_null(t);
	return fhir_elem_find(t, key, chosen);
}

static void
types_are_found(void **state)
{
	const struct fhir_type *t;

	t = fhir_type_find("Patient");
	assert_non_null(t);
	assert_int_equal(t->kind, FHIR_RESOURCE);
	t = fhir_type_find("HumanName");
	assert_non_null(t);
	assert_int_equal(t->kind, FHIR_COMPLEX);
	t = fhir_type_find("dateTime");
	assert_non_null(t);
	assert_int_equal(t->kind, FHIR_PRIMITIVE);
	assert_int_equal(t->prim, PRIM_DATETIME);
	t = fhir_type_find("Patient.contact");
	assert_non_null(t);
	assert_int_equal(t->kind, FHIR_BACKBONE);
	assert_null(fhir_type_find("Patiant"));
	assert_null(fhir_type_find(""));
	/* elements are sorted for bsearch */
	t = fhir_type_find("Observation");
	for (size_t i = 1; i < t->nelems; i++)
		assert_true(strcmp(t->elems[i - 1].name, t->elems[i].name) < 0);
}

static void
patient_elements(void **state)
{
	const struct fhir_elemtype *et;
	const struct fhir_elem *e;

	e = elem("Patient", "birthDate", &et);
	assert_non_null(e);
	assert_string_equal(et->code, "date");
	assert_int_equal(et->type->prim, PRIM_DATE);
	assert_int_equal(e->max, 1);
	e = elem("Patient", "name", &et);
	assert_non_null(e);
	assert_int_equal(e->max, -1);
	assert_string_equal(et->type->name, "HumanName");
	e = elem("Patient", "gender", &et);
	assert_non_null(e->binding);
	assert_true(fhir_valueset_has(e->binding, "female"));
	assert_false(fhir_valueset_has(e->binding, "man"));
	e = elem("Patient", "id", &et);
	assert_int_equal(et->type->prim, PRIM_ID);
	/* Element/BackboneElement fields are present everywhere */
	assert_non_null(elem("Patient.contact", "modifierExtension", NULL));
	assert_non_null(elem("HumanName", "extension", NULL));
	assert_non_null(elem("HumanName", "id", NULL));
	assert_non_null(elem("string", "extension", NULL));
	assert_non_null(elem("Patient", "contained", &et));
	assert_null(et->type);
	assert_string_equal(et->code, "Resource");
	e = elem("Extension", "url", &et);
	assert_int_equal(e->min, 1);
	assert_int_equal(et->type->prim, PRIM_URI);
}

static void
choice_elements(void **state)
{
	const struct fhir_elemtype *et;
	const struct fhir_elem *e;

	e = elem("Observation", "valueQuantity", &et);
	assert_non_null(e);
	assert_true(e->choice);
	assert_string_equal(e->name, "value");
	assert_string_equal(et->code, "Quantity");
	e = elem("Observation", "valueDateTime", &et);
	assert_non_null(e);
	assert_string_equal(et->code, "dateTime");
	assert_null(elem("Observation", "valueFoo", &et));
	assert_null(et);
	assert_null(elem("Observation", "value", NULL));
	e = elem("Patient", "deceasedBoolean", &et);
	assert_non_null(e);
	assert_string_equal(et->suffix, "Boolean");
	e = elem("Observation.component", "valueString", &et);
	assert_non_null(e);
	assert_int_equal(et->type->prim, PRIM_STRING);
}

static void
content_reference_resolves(void **state)
{
	const struct fhir_elemtype *et;
	const struct fhir_elem *e;

	e = elem("Questionnaire.item", "item", &et);
	assert_non_null(e);
	assert_ptr_equal(et->type, fhir_type_find("Questionnaire.item"));
	e = elem("Timing", "repeat", &et);
	assert_non_null(e);
	assert_ptr_equal(et->type, fhir_type_find("Timing.repeat"));
}

static const struct fhir_searchparam *
param(const struct fhir_restype *rt, const char *code, enum fhir_sptype type)
{
	const struct fhir_searchparam *sp = fhir_sp_find(rt, code);

	assert_non_null(sp);
	assert_int_equal(sp->type, type);
	return sp;
}

static bool
has_str(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static void
served_types(void **state)
{
	assert_true(fhir_restype_count() >= 36);
	assert_string_equal(fhir_restype_at(0)->name, "Patient");
	assert_null(fhir_restype_at(fhir_restype_count()));
	for (size_t i = 0; i < fhir_restype_count(); i++) {
		const struct fhir_restype *rt = fhir_restype_at(i);

		assert_ptr_equal(fhir_restype_find(rt->name), rt);
		assert_ptr_equal(rt->type, fhir_type_find(rt->name));
		for (size_t j = 1; j < rt->nparams; j++)
			assert_true(strcmp(rt->params[j - 1].code,
					   rt->params[j].code) < 0);
		param(rt, "_id", SP_TOKEN);
		param(rt, "_lastUpdated", SP_DATE);
		assert_null(fhir_sp_find(rt, "_text"));
	}
	assert_null(fhir_restype_find("Claim"));   /* in R4, not served */
	assert_null(fhir_restype_find("Patiant"));
	assert_non_null(fhir_restype_findn("Patient/123", 7));
	assert_null(fhir_restype_findn("Patient", 6));
}

static void
patient_params(void **state)
{
	const struct fhir_restype *rt = fhir_restype_find("Patient");
	const struct fhir_searchparam *sp;

	assert_non_null(rt);
	sp = param(rt, "birthdate", SP_DATE);
	assert_true(sp->supported);
	assert_int_equal(sp->npaths, 1);
	assert_int_equal(sp->paths[0].nsteps, 1);
	assert_string_equal(sp->paths[0].steps[0].name, "birthDate");
	sp = param(rt, "name", SP_STRING);
	assert_true(sp->supported);
	sp = param(rt, "general-practitioner", SP_REFERENCE);
	assert_true(sp->supported);
	assert_true(has_str(sp->targets, sp->ntargets, "Practitioner"));
	sp = param(rt, "email", SP_TOKEN);
	assert_true(sp->supported);
	assert_string_equal(sp->paths[0].steps[0].where_field, "system");
	assert_string_equal(sp->paths[0].steps[0].where_value, "email");
	sp = param(rt, "_lastUpdated", SP_DATE);
	assert_int_equal(sp->paths[0].nsteps, 2);
	assert_string_equal(sp->paths[0].steps[0].name, "meta");
	assert_string_equal(sp->paths[0].steps[1].name, "lastUpdated");
	sp = param(rt, "death-date", SP_DATE);
	assert_string_equal(sp->paths[0].steps[0].name, "deceased");
	assert_string_equal(sp->paths[0].steps[0].as_type, "dateTime");
	sp = param(rt, "deceased", SP_TOKEN);
	assert_false(sp->supported); /* exists() and != */
}

static void
observation_params(void **state)
{
	const struct fhir_restype *rt = fhir_restype_find("Observation");
	const struct fhir_searchparam *sp;

	assert_non_null(rt);
	sp = param(rt, "code", SP_TOKEN);
	assert_true(sp->supported);
	assert_string_equal(sp->paths[0].steps[0].name, "code");
	sp = param(rt, "value-quantity", SP_QUANTITY);
	assert_true(sp->supported);
	assert_string_equal(sp->paths[0].steps[0].name, "value");
	assert_string_equal(sp->paths[0].steps[0].as_type, "Quantity");
	sp = param(rt, "patient", SP_REFERENCE);
	assert_true(sp->supported);
	assert_string_equal(sp->paths[0].ref_target, "Patient");
	sp = param(rt, "code-value-quantity", SP_COMPOSITE);
	assert_false(sp->supported);
	sp = param(rt, "value-string", SP_STRING);
	assert_int_equal(sp->npaths, 2);
	assert_int_equal(sp->paths[1].nsteps, 2);
	assert_string_equal(sp->paths[1].steps[0].as_type, "CodeableConcept");
	assert_string_equal(sp->paths[1].steps[1].name, "text");
	assert_true(has_str(rt->compartment_params, rt->ncompartment, "subject"));
	assert_true(has_str(rt->compartment_params, rt->ncompartment, "performer"));
	/* every compartment param names a param of the type */
	for (size_t i = 0; i < fhir_restype_count(); i++) {
		const struct fhir_restype *r = fhir_restype_at(i);

		for (size_t j = 0; j < r->ncompartment; j++)
			assert_non_null(fhir_sp_find(r, r->compartment_params[j]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(types_are_found),
		cmocka_unit_test(patient_elements),
		cmocka_unit_test(choice_elements),
		cmocka_unit_test(content_reference_resolves),
		cmocka_unit_test(served_types),
		cmocka_unit_test(patient_params),
		cmocka_unit_test(observation_params),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
