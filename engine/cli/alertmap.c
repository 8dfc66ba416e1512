/* alertmap CLI - not yet written. */
int main(void)
{
    return 1;
}
