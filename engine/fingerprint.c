/*
 * engine/fingerprint.c - the alert fingerprint used for de-duplication.
 *
 * SHA-256 over: title, 0x00, source, 0x00, then for each indicator in order
 * of (type name, value) compared bytewise: type name, 0x01, value, 0x00.
 * The separators cannot occur inside the parts (NUL never does; 0x01 never
 * occurs in a type name), so two different inputs never hash the same text.
 */
#include "eng.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The digest is fetched once per process and each thread keeps one digest
 * context (freed when the thread ends): fingerprinting an alert neither
 * allocates nor takes a lock. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static EVP_MD *sha256;

static void free_ctx(void *p)
{
    EVP_MD_CTX_free(p);
}

static void init_once(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&ctx_key, free_ctx) != 0)
        sha256 = NULL;
}

static EVP_MD_CTX *thread_ctx(void)
{
    pthread_once(&once, init_once);
    if (sha256 == NULL)
        return NULL;
    EVP_MD_CTX *c = pthread_getspecific(ctx_key);
    if (c == NULL) {
        c = EVP_MD_CTX_new();
        if (c != NULL && pthread_setspecific(ctx_key, c) != 0) {
            EVP_MD_CTX_free(c);
            c = NULL;
        }
    }
    return c;
}

static int cmp_ioc(const void *a, const void *b)
{
    const eng_indicator_t *x = *(const eng_indicator_t *const *)a;
    const eng_indicator_t *y = *(const eng_indicator_t *const *)b;
    int c = strcmp(eng_ioc_type_name(x->type), eng_ioc_type_name(y->type));
    return c != 0 ? c : strcmp(x->value, y->value);
}

void eng_fingerprint(char out[65], const char *title, const char *source,
                     const eng_indicator_t *iocs, size_t n)
{
    const eng_indicator_t *stack[ENG_MAX_INDICATORS];
    const eng_indicator_t **order = stack;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const unsigned char zero = 0, one = 1;
    out[0] = '\0';
    if (n > AM_ARRAY_LEN(stack))
        order = am_xmalloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = &iocs[i];
    if (n > 1)
        qsort(order, n, sizeof(*order), cmp_ioc);
    EVP_MD_CTX *ctx = thread_ctx();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, sha256, NULL) == 1;
    ok = ok && EVP_DigestUpdate(ctx, title, strlen(title)) == 1 &&
         EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
         EVP_DigestUpdate(ctx, source, strlen(source)) == 1 && EVP_DigestUpdate(ctx, &zero, 1) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        const char *t = eng_ioc_type_name(order[i]->type);
        ok = EVP_DigestUpdate(ctx, t, strlen(t)) == 1 && EVP_DigestUpdate(ctx, &one, 1) == 1 &&
             EVP_DigestUpdate(ctx, order[i]->value, strlen(order[i]->value)) == 1 &&
             EVP_DigestUpdate(ctx, &zero, 1) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    if (order != stack)
        free(order);
    if (!ok) {
        /* Only when OpenSSL cannot allocate or offers no SHA-256: treated
         * like heap exhaustion (see am.h), never as a per-alert error. */
        fputs("alertmap: SHA-256 unavailable from OpenSSL\n", stderr);
        abort();
    }
    am_hex(out, md, 32);
}
